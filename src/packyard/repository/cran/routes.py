"""`/{repo}/{snapshot}/src/contrib/...`: what R's `install.packages(repos = ...)` reads from a CRAN mirror."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from packyard.repository.cran import index
from packyard.repository.cran.index import RFile, RPackageEntry
from packyard.repository.errors import NotFound
from packyard.repository.serving.routes import authorize, ctx, repo_or_404, snapshot_or_404
from packyard.repository.serving.simple_response import etag_matches
from packyard.storage import BlobResponse

router = APIRouter()
_IMMUTABLE = "max-age=31536000, immutable"


async def _entries(request: Request, repo: str, snapshot: str) -> dict[str, RPackageEntry]:
    info = repo_or_404(request, repo)
    day = snapshot_or_404(snapshot)
    if info.authenticated:
        await authorize(request, "repos:read", "repo", repo)
    cutoff = None if day is None else datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)

    def read() -> dict[str, RPackageEntry]:
        with ctx(request).db.session() as session:
            return index.contrib(session, info.id, cutoff)

    return await run_in_threadpool(read)


def _index_response(request: Request, body: bytes, media_type: str, private: bool) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    # The index changes with every upload: clients revalidate it, and get a 304 when nothing changed.
    headers = {"etag": etag, "cache-control": ("private" if private else "public") + ", no-cache"}
    if etag_matches(etag.encode(), request.headers.get("if-none-match", "").encode("latin-1")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/{repo}/{snapshot}/src/contrib/PACKAGES", methods=["GET", "HEAD"])
async def packages(repo: str, snapshot: str, request: Request) -> Response:
    entries = await _entries(request, repo, snapshot)
    private = ctx(request).pages.repos[repo].authenticated
    return _index_response(request, index.packages_text(entries), "text/plain; charset=utf-8", private)


@router.api_route("/{repo}/{snapshot}/src/contrib/PACKAGES.gz", methods=["GET", "HEAD"])
async def packages_gz(repo: str, snapshot: str, request: Request) -> Response:
    entries = await _entries(request, repo, snapshot)
    private = ctx(request).pages.repos[repo].authenticated
    return _index_response(
        request, index.packages_gz(index.packages_text(entries)), "application/octet-stream", private
    )


@router.api_route("/{repo}/{snapshot}/src/contrib/PACKAGES.rds", methods=["GET", "HEAD"])
async def packages_rds(repo: str, snapshot: str, request: Request) -> Response:
    await _entries(request, repo, snapshot)  # the repository, the date and the credentials first
    raise NotFound("This repository serves no PACKAGES.rds; R reads `PACKAGES.gz` instead.")


def _file_response(request: Request, found: RFile, private: bool) -> Response:
    etag = f'"{found.sha256}"'
    headers = {"etag": etag, "cache-control": ("private, " if private else "public, ") + _IMMUTABLE}
    if etag_matches(etag.encode(), request.headers.get("if-none-match", "").encode("latin-1")):
        return Response(status_code=304, headers=headers)
    # octet-stream, never Content-Encoding: gzip, so the tarball arrives as stored.
    return BlobResponse(ctx(request).store, found.sha256, media_type="application/octet-stream", headers=headers)


@router.api_route("/{repo}/{snapshot}/src/contrib/Archive/{package}/{filename}", methods=["GET", "HEAD"])
async def archived_file(repo: str, snapshot: str, package: str, filename: str, request: Request) -> Response:
    entries = await _entries(request, repo, snapshot)
    entry = entries.get(package)
    found = next((f for f in entry.archived if f.filename == filename), None) if entry else None
    if found is None:
        raise NotFound(
            f"No archived `{filename[:200]}` of package `{package[:100]}` in repository `{repo}` ({snapshot}); "
            f"the newest version is at `src/contrib/<package>_<version>.tar.gz`, listed in `src/contrib/PACKAGES`."
        )
    return _file_response(request, found, ctx(request).pages.repos[repo].authenticated)


@router.api_route("/{repo}/{snapshot}/src/contrib/{filename}", methods=["GET", "HEAD"])
async def current_file(repo: str, snapshot: str, filename: str, request: Request) -> Response:
    entries = await _entries(request, repo, snapshot)
    package = filename.split("_", 1)[0]
    entry = entries.get(package)
    if entry is not None and entry.current is not None and entry.current.filename == filename:
        return _file_response(request, entry.current, ctx(request).pages.repos[repo].authenticated)
    archived = entry is not None and any(f.filename == filename for f in entry.archived)
    hint = (
        f"it is an older version, served at `src/contrib/Archive/{package}/{filename}`"
        if archived
        else "`src/contrib/PACKAGES` lists the packages and versions served"
    )
    raise NotFound(f"No `{filename[:200]}` in repository `{repo}` ({snapshot}); {hint}.")
