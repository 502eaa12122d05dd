"""The package pages: repositories, a repository's projects with search, a project, and the client setup page."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from packyard.repository.browse import catalog, descriptions
from packyard.repository.cran import browse as cran_browse
from packyard.repository.cran import description
from packyard.repository.cran.index import RPackageEntry
from packyard.repository.errors import UpstreamUnavailable, VersionNotFound
from packyard.repository.index import snapshots
from packyard.repository.index.page_cache import RepoInfo
from packyard.repository.models import Repository
from packyard.repository.names import is_valid_project_name, normalize
from packyard.web import client_setup
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError, SignInRequired
from packyard.web.render import render
from packyard.web.session import context, current_user

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PER_PAGE = 50
MAX_QUERY = 200
# Days listed under the calendar; the date field reaches every other day.
LISTED_DAYS = 60
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_summaries = descriptions.Summaries()
# A repository's project list (names, latest versions, summaries), kept until the change log moves on.
_listings: dict[tuple[int, int], tuple[int, list[catalog.ProjectEntry]]] = {}
_listings_lock = threading.Lock()


def _path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def repository(request: Request, name: str) -> RepoInfo:
    """The repository a page is about, if this visitor may see it: anonymous visitors sign in for an
    authenticated one."""
    info = context(request).pages.repos.get(name)
    if info is None:
        raise PageError(f"There is no repository `{name}`; the repositories you can see are listed at /repos/.", 404)
    if info.authenticated and current_user(request) is None:
        raise SignInRequired(_path(request))
    return info


def _page_number(value: str | None) -> int:
    if value is None or value == "":
        return 1
    if not value.isdigit() or int(value) < 1:
        raise PageError(f"Page `{value}` is not a page number; use a whole number from 1, as the page links do.")
    return int(value)


def _listing(request: Request, info: RepoInfo) -> list[catalog.ProjectEntry]:
    c = context(request)
    key = (id(c), info.id)
    serial = c.pages.serial
    with _listings_lock:
        cached = _listings.get(key)
    if cached is not None and cached[0] == serial:
        return cached[1]
    with c.db.session() as session:
        if cran_browse.is_r_repository(info):
            entries = cran_browse.project_entries(session, info.id)
        else:
            entries = catalog.project_entries(session, c.store, info.id, _summaries)
    with _listings_lock:
        _listings[key] = (serial, entries)
    return entries


def _description(request: Request, info: RepoInfo) -> str:
    with context(request).db.session() as session:
        repo = session.get(Repository, info.id)
        return repo.description if repo is not None else ""


@router.get("/repos/")
def repositories(request: Request) -> Response:
    with context(request).db.session() as session:
        repos = catalog.visible_repositories(session, signed_in=current_user(request) is not None)
    return render(request, "packages/repos.html", section="packages", repos=repos)


@router.get("/repos/{repo}/")
def projects(request: Request, repo: str, q: str = "", page: str | None = None) -> Response:
    info = repository(request, repo)
    query = q.strip()
    if len(query) > MAX_QUERY:
        raise PageError(
            f"The search `{query[:40]}...` is {len(query)} characters long; search with at most {MAX_QUERY}."
        )
    number = _page_number(page)
    entries = catalog.search(_listing(request, info), query)
    result = catalog.paginate(entries, number, PER_PAGE)
    if number > result.pages:
        raise PageError(
            f"Page {number} is past the last page of results ({result.pages}); go back to page 1.",
            404,
        )

    def link(n: int) -> str:
        params = {"q": query} if query else {}
        if n > 1:
            params["page"] = str(n)
        return f"/repos/{repo}/" + (f"?{urlencode(params)}" if params else "")

    return render(
        request,
        "packages/repo.html",
        section="packages",
        repo=info,
        description=_description(request, info),
        query=query,
        result=result,
        link=link,
    )


@router.get("/repos/{repo}/packages/{name}")
@router.get("/repos/{repo}/packages/{name}/")
async def project(request: Request, repo: str, name: str, version: str | None = None) -> Response:
    info = repository(request, repo)
    if cran_browse.is_r_repository(info):
        return await r_package(request, info, name)
    if not is_valid_project_name(name):
        raise PageError(
            f"`{name[:100]}` is not a project name (letters, digits, `.`, `_` and `-`); search for the project at "
            f"/repos/{repo}/.",
            404,
        )
    normalized = normalize(name)
    if normalized != name or not request.url.path.endswith("/"):
        query = f"?{urlencode({'version': version})}" if version else ""
        return RedirectResponse(f"/repos/{repo}/packages/{normalized}/{query}", status_code=301)
    c = context(request)
    if info.mirrored:
        await c.mirror.ensure(info, normalized)

    def load() -> catalog.ProjectDetail | None:
        with c.db.session() as session:
            return catalog.project_detail(session, c.store, repo, info.id, normalized, version or None)

    try:
        detail = await run_in_threadpool(load)
        if detail is not None and detail.upstream_metadata is not None:
            # A mirrored release whose files nobody downloaded yet: its `.metadata` is small, fetch it now.
            try:
                await c.mirror.metadata(*detail.upstream_metadata)
            except UpstreamUnavailable:
                pass  # the page says the metadata is not here yet
            else:
                detail = await run_in_threadpool(load)
    except VersionNotFound:
        raise PageError(
            f"Version `{version}` of `{normalized}` is not in repository `{repo}`; "
            f"the versions it has are listed at /repos/{repo}/packages/{normalized}/.",
            404,
        ) from None
    if detail is None:
        raise PageError(
            f"Project `{name}` is not in repository `{repo}`; search for it at /repos/{repo}/.",
            404,
        )
    url = client_setup.index_url(c.settings.server.address, repo, "latest")
    install = f"pip install --index-url {url} {detail.display_name}=={detail.shown.version}"
    return render(
        request,
        "packages/project.html",
        section="packages",
        repo=info,
        p=detail,
        install=install,
    )


async def r_package(request: Request, info: RepoInfo, name: str) -> Response:
    """An R package's page: its DESCRIPTION fields, the install line, and its versions (older ones under Archive/)."""
    c = context(request)

    def load() -> RPackageEntry | None:
        with c.db.session() as session:
            return cran_browse.package(session, info.id, name)

    entry = await run_in_threadpool(load) if is_valid_project_name(name) else None
    if entry is None:
        raise PageError(
            f"Package `{name[:100]}` is not in repository `{info.name}`; search for it at /repos/{info.name}/.", 404
        )
    url = client_setup.r_repo_url(c.settings.server.address, info.name, "latest")
    shown = entry.current or entry.archived[-1]
    return render(
        request,
        "packages/r_package.html",
        section="packages",
        repo=info,
        p=entry,
        shown=shown,
        title=description.one_line(shown.fields.get("Title", "")),
        text=description.one_line(shown.fields.get("Description", "")),
        fields=[(k, description.one_line(shown.fields[k])) for k in cran_browse.SHOWN_FIELDS if shown.fields.get(k)],
        install=f'install.packages("{entry.name}", repos = c(PACKYARD = "{url}"))',
        base=f"/{info.name}/latest/src/contrib",
    )


@router.get("/repos/{repo}/setup")
def setup(request: Request, repo: str, date: str | None = None, package: str = "") -> Response:
    info = repository(request, repo)
    day = _snapshot_day(date)
    snapshot = day.isoformat() if day else "latest"
    with context(request).db.session() as session:
        days = snapshots.transaction_dates(session, info.id)
    address = context(request).settings.server.address
    r = cran_browse.is_r_repository(info)
    valid = is_valid_project_name(package) and len(package) <= 200
    pkg = (package if r else normalize(package)) if valid else ""
    return render(
        request,
        "packages/setup.html",
        section="packages",
        repo=info,
        day=day,
        snapshot=snapshot,
        today=datetime.now(UTC).date().isoformat(),
        days=list(reversed(days))[:LISTED_DAYS],
        more_days=max(0, len(days) - LISTED_DAYS),
        first_day=days[0] if days else None,
        url=(client_setup.r_repo_url if r else client_setup.index_url)(address, repo, snapshot),
        sections=(client_setup.r_sections if r else client_setup.sections)(
            address, repo, snapshot, info.authenticated, pkg, tls=bool(context(request).settings.server.tls_certificate)
        ),
        package=pkg,
        r=r,
    )


def _snapshot_day(value: str | None) -> date | None:
    if not value or value == "latest":
        return None
    try:
        day = date.fromisoformat(value) if _DATE.match(value) else None
    except ValueError:
        day = None
    if day is None:
        raise PageError(f"`{value}` is not a date; pick one in the calendar, or write it as YYYY-MM-DD.")
    today = datetime.now(UTC).date()
    if day > today:
        raise PageError(
            f"{value} is in the future (today is {today.isoformat()} in UTC); pick today or an earlier day, "
            "or use latest."
        )
    return day
