"""HTTP routes of the package repository: what the hot path passes on (misses, ranges, big files); uploads are
answered in front of these routes by `upload/endpoint.py`."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.concurrency import run_in_threadpool

from packyard import __version__
from packyard.auth.tokens import Grant
from packyard.context import AppContext
from packyard.repository import services
from packyard.repository.errors import (
    Blocked,
    MethodNotAllowed,
    NotFound,
    UpstreamUnavailable,
)
from packyard.repository.index import snapshots
from packyard.repository.index.page_cache import CachedPage, RepoInfo
from packyard.repository.names import is_valid_project_name, normalize
from packyard.repository.remote.download import remote_cli
from packyard.repository.serving import simple_response
from packyard.repository.serving.hot_path import snapshot_day
from packyard.repository.serving.simple_response import PageAnswerResponse, PageRequest, etag_matches
from packyard.storage import BlobResponse

router = APIRouter()
_IMMUTABLE = "max-age=31536000, immutable"


def ctx(request: Request) -> AppContext:
    return request.app.state.packyard


async def authenticate(request: Request) -> Grant:
    """The grant of the request's token (any scope); `AuthError` (401) when there is none or it is not valid."""
    c = ctx(request)
    header = request.headers.get("authorization")
    grant = c.auth.cached(header)
    if grant is None:
        grant = await run_in_threadpool(c.auth.authenticate, header)
    return grant


async def authorize(request: Request, scope: str, kind: str, resource: str) -> Grant:
    grant = await authenticate(request)
    grant.require(scope, kind, resource)
    return grant


def repo_or_404(request: Request, name: str) -> RepoInfo:
    repo = ctx(request).pages.repos.get(name)
    if repo is None:
        known = ", ".join(f"`{n}`" for n in sorted(ctx(request).pages.repos))
        raise NotFound(f"Repository `{name}` does not exist. Known repositories: {known or 'none'}.")
    return repo


def snapshot_or_404(snapshot: str) -> date | None:
    """None for `latest`, else the day a `YYYY-MM-DD` snapshot segment names."""
    if snapshot == "latest":
        return None
    day = snapshot_day(snapshot)
    if day is None:
        raise NotFound(
            f"Snapshot `{snapshot}` is not `latest` or a past or present date (`YYYY-MM-DD`, UTC); "
            "`/__api__/repos/<repo>/transaction-dates` lists the dates with changes."
        )
    return day


@router.api_route("/{repo}/{snapshot}/simple", methods=["GET", "HEAD"])
@router.api_route("/{repo}/{snapshot}/simple/", methods=["GET", "HEAD"])
async def simple_root(repo: str, snapshot: str, request: Request) -> Response:
    """Reached only when the fast path did not answer: an unknown repository or snapshot, or a missing slash."""
    repo_or_404(request, repo)
    snapshot_or_404(snapshot)
    return RedirectResponse(f"/{repo}/{snapshot}/simple/", status_code=301)


@router.api_route("/{repo}/{snapshot}/simple/{project}", methods=["GET", "HEAD"])
@router.api_route("/{repo}/{snapshot}/simple/{project}/", methods=["GET", "HEAD"])
async def simple_project(repo: str, snapshot: str, project: str, request: Request) -> Response:
    """Reached when the fast path did not answer: redirects, 404s, and mirrored names due for revalidation."""
    c = ctx(request)
    info = repo_or_404(request, repo)
    day = snapshot_or_404(snapshot)
    if info.authenticated:
        await authorize(request, "repos:read", "repo", repo)
    if not is_valid_project_name(project):
        raise NotFound(
            f"`{project[:100]}` is not a project name (letters, digits, `.`, `_` and `-`); project pages are "
            f"`/{repo}/{snapshot}/simple/<name>/`, and `/{repo}/{snapshot}/simple/` lists the names."
        )
    normalized = normalize(project)
    if normalized != project or not request.url.path.endswith("/"):
        return RedirectResponse(f"/{repo}/{snapshot}/simple/{normalized}/", status_code=301)
    stale = None
    if info.mirrored:
        stale = await c.mirror.ensure(info, project)
    if day is None:
        page = c.pages.get(info.id, project) or await run_in_threadpool(c.pages.load, info.id, project)
    else:
        page = c.pages.get((info.id, day.isoformat()), project) or await run_in_threadpool(
            c.pages.load_dated, info.id, day, project
        )
    if not isinstance(page, CachedPage):
        where = f"repository `{repo}`" + (f" as of {day}" if day else "")
        raise NotFound(
            f"Project `{project}` is not in {where}; check the name, or upload it "
            "first with twine, `uv publish` or `packyard add`."
        )
    return PageAnswerResponse(simple_response.answer(page, PageRequest.of(request.scope), info.authenticated, stale))


@router.api_route("/{repo}/{snapshot}/simple/{rest:path}", methods=["GET", "HEAD"])
async def simple_other(repo: str, snapshot: str, rest: str, request: Request) -> Response:
    """Below `simple/`, anything but `<name>/`: a 404 that says so, rather than a 405 for the other methods."""
    repo_or_404(request, repo)
    snapshot_or_404(snapshot)
    raise NotFound(
        f"`{rest[:100]}` is not a project page; project pages are `/{repo}/{snapshot}/simple/<name>/`, and "
        f"`/{repo}/{snapshot}/simple/` lists the names."
    )


@router.api_route("/{repo}/{snapshot}/simple/{rest:path}", methods=["POST", "PUT", "PATCH", "DELETE"])
async def simple_wrong_method(repo: str, snapshot: str, rest: str, request: Request) -> Response:
    raise MethodNotAllowed(
        "This is the simple index URL, which is read-only; upload to "
        "`/upload/pypi/<source>` instead (for example `/upload/pypi/local-python-src`)."
    )


@router.api_route("/{repo}/{snapshot}/packages/{name}/{sha256}/{filename}", methods=["GET", "HEAD"])
async def package_file(repo: str, snapshot: str, name: str, sha256: str, filename: str, request: Request) -> Response:
    c = ctx(request)
    info = repo_or_404(request, repo)
    day = snapshot_or_404(snapshot)
    if info.authenticated:
        await authorize(request, "repos:read", "repo", repo)
    # Range requests and large files come here on every read: use the cache too.
    cached = c.files.cached(info.id, sha256, filename, day.isoformat() if day else "")
    found = await run_in_threadpool(c.files.find, info, sha256, filename, day) if cached is False else cached
    if found is None:
        where = f"repository `{repo}`" + (f" as of {day}" if day else "")
        raise NotFound(f"No file `{filename}` with sha256 `{sha256}` in {where}; take file URLs from the simple index.")
    if found.blocked is not None:
        raise Blocked(found.blocked)
    etag = f'"{found.digest}"'
    headers = {
        "etag": etag,
        "cache-control": ("private, " if info.authenticated else "public, ") + _IMMUTABLE,
        "accept-ranges": "bytes",
    }
    if etag_matches(etag.encode(), request.headers.get("if-none-match", "").encode("latin-1")):
        return Response(status_code=304, headers=headers)
    if found.upstream is not None:
        if filename.endswith(".metadata"):
            data = await c.mirror.metadata(found.digest, found.upstream)
            return Response(data, media_type=found.media_type, headers=headers)
        if await run_in_threadpool(c.store.exists, found.digest):  # arrived since the lookup
            return BlobResponse(c.store, found.digest, media_type=found.media_type, headers=headers)
        download = await c.mirror.download(found.digest, found.upstream, found.source_id)
        if request.method == "HEAD" or "range" in request.headers:
            # uv reads a wheel's METADATA with Range requests when there is no `.metadata`: answer those, and
            # the HEAD that precedes them, from the stored file once it is complete.
            await download.finished.wait()
            if download.error is not None:
                raise UpstreamUnavailable(download.error)
            return BlobResponse(c.store, found.digest, media_type=found.media_type, headers=headers)
        headers.pop("accept-ranges")  # while it arrives the file is streamed whole
        if download.total is not None:
            headers["content-length"] = str(download.total)
        return StreamingResponse(download.stream(), media_type=found.media_type, headers=headers)
    if found.data is not None:
        return Response(found.data, media_type=found.media_type, headers=headers)
    # octet-stream, never Content-Encoding: gzip, so clients do not unpack a .tar.gz in transit.
    return BlobResponse(c.store, found.digest, media_type=found.media_type, headers=headers)


@router.get("/__api__/repos/{repo}/transaction-dates")
async def transaction_dates(repo: str, request: Request) -> Response:
    """The days on which something visible in the repository changed, oldest first (PPM's snapshot calendar)."""
    c = ctx(request)
    info = _repo_by_name_or_id(request, repo)
    if info.authenticated:
        await authorize(request, "repos:read", "repo", info.name)

    def dates() -> list[dict[str, str]]:
        with c.db.session() as session:
            return [{"alias": day} for day in snapshots.transaction_dates(session, info.id)]

    return JSONResponse(await run_in_threadpool(dates))


def _repo_by_name_or_id(request: Request, key: str) -> RepoInfo:
    """PPM's `__api__` takes a repository's name or its id."""
    repos = ctx(request).pages.repos
    if key.isdigit():
        for info in repos.values():
            if info.id == int(key):
                return info
    return repo_or_404(request, key)


@router.get("/__api__/sources/{source}/files/{filename}")
async def source_file(source: str, filename: str, request: Request) -> Response:
    """Whether a file is already in a source, so `packyard add` can skip it without uploading."""
    c = ctx(request)
    await authorize(request, "sources:write", "source", source)

    def lookup() -> dict[str, object]:
        with c.db.session() as session:
            found = services.find_file(session, source, filename)
            return {"filename": found.filename, "sha256": found.sha256, "size": found.size}

    return JSONResponse(await run_in_threadpool(lookup))


@router.api_route("/__api__/download", methods=["GET", "HEAD"])
async def download_remote_cli(request: Request, os_name: Annotated[str | None, Query(alias="os")] = None) -> Response:
    """The remote CLI (`repository/remote/`), as PPM's users fetch theirs with `curl -fLOJH "Authorization: Bearer
    ..."`. Any valid token will do: the file is the same for everyone, and the upload checks `sources:write`."""
    cli = remote_cli(os_name)  # the request's shape first, then its credentials (docs: validation order)
    await authenticate(request)
    return Response(
        cli.body,
        media_type="text/x-python; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{cli.filename}"', "cache-control": "no-store"},
    )


@router.get("/__ping__")
async def ping() -> Response:
    return PlainTextResponse("OK\n")


@router.get("/__api__/status")
async def status(request: Request) -> Response:
    return JSONResponse({"version": __version__, "serial": ctx(request).pages.serial})


@router.get("/__api__/repos")
async def list_repos(request: Request) -> Response:
    repos = sorted(ctx(request).pages.repos.values(), key=lambda r: r.name)
    return JSONResponse(
        [
            {
                "id": r.id,
                "name": r.name,
                "type": "r" if any(s.type in services.R_TYPES for s in r.sources) else "python",
                "authenticated": r.authenticated,
            }
            for r in repos
        ]
    )
