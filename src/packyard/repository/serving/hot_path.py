"""The hot path, as raw ASGI: simple pages and small files of `/{repo}/latest/...` and of dated snapshots.

Pages are rendered at write time and cached in memory, and file lookups are cached too, so a read is a
few dictionary lookups and one send. Whatever this path does not answer (other URLs and methods, unknown
repositories, misses, `Range` requests, large files, mirrored names due for revalidation, files still
upstream, blocked files) goes to the main app, which also owns the messages.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.auth.authenticator import Authenticator
from packyard.auth.tokens import Grant
from packyard.errors import PackyardError
from packyard.repository.index.page_cache import MISSING, CachedPage, PageCache, RepoInfo
from packyard.repository.mirror.service import Mirror
from packyard.repository.names import normalize
from packyard.repository.serving import simple_response
from packyard.repository.serving.files import FileIndex, ServedFile
from packyard.repository.serving.simple_response import PageRequest, etag_matches
from packyard.storage import BlobStore

_FILE_PUBLIC = (b"cache-control", b"public, max-age=31536000, immutable")
_FILE_PRIVATE = (b"cache-control", b"private, max-age=31536000, immutable")
_RANGES = (b"accept-ranges", b"bytes")
# Larger files stream through Starlette's FileResponse instead of being read in one go.
MAX_INLINE_FILE = 1024 * 1024


class ErrorSender(Protocol):
    """Renders a PackyardError as a response (the app's one error boundary)."""

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exc: PackyardError, status: int | None = None
    ) -> None: ...


class HotPathApp:
    def __init__(
        self,
        pages: PageCache,
        files: FileIndex,
        store: BlobStore,
        auth: Authenticator,
        mirror: Mirror,
        fallback: ASGIApp,
        error: ErrorSender,
    ) -> None:
        self.pages = pages
        self.files = files
        self.store = store
        self.auth = auth
        self.mirror = mirror
        self.fallback = fallback
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.fallback(scope, receive, send)
        parts = scope["path"].split("/")
        # Pages: ['', repo, 'latest', 'simple', project, ''] or [..., 'simple', ''] for the root.
        # Files: ['', repo, 'latest', 'packages', name, sha256, filename].
        n = len(parts)
        if n < 5:
            return await self.fallback(scope, receive, send)
        day = None
        if parts[2] != "latest":
            day = snapshot_day(parts[2])
            if day is None:
                return await self.fallback(scope, receive, send)
        repo = self.pages.repos.get(parts[1])
        if repo is None:
            return await self.fallback(scope, receive, send)
        if parts[3] == "simple" and n in (5, 6) and parts[-1] == "":
            return await self._page(scope, receive, send, repo, parts[4] if n == 6 else "", day)
        if parts[3] == "packages" and n == 7:
            return await self._file(scope, receive, send, repo, parts[5], parts[6], day)
        return await self.fallback(scope, receive, send)

    async def _page(
        self, scope: Scope, receive: Receive, send: Send, repo: RepoInfo, project: str, day: date | None
    ) -> None:
        if project and project != normalize(project):
            return await self.fallback(scope, receive, send)  # the main app redirects to the normal name
        if project and repo.mirrored and not self.mirror.is_fresh(repo.id, project):
            return await self.fallback(scope, receive, send)  # the main app asks the upstream first
        request = PageRequest.of(scope)
        if repo.authenticated and not await self._authorized(scope, receive, send, repo, request.authorization):
            return
        try:  # a page not in memory is read from the database, which may be out of reach (503)
            if day is None:
                page = self.pages.get(repo.id, project)
                if page is None:
                    page = await run_in_threadpool(self.pages.load, repo.id, project)
            else:
                page = self.pages.get((repo.id, day.isoformat()), project)
                if page is None:
                    page = await run_in_threadpool(self.pages.load_dated, repo.id, day, project)
        except PackyardError as exc:
            return await self.error(scope, receive, send, exc)
        if page is MISSING:
            return await self.fallback(scope, receive, send)
        assert isinstance(page, CachedPage)
        try:
            answer = simple_response.answer(page, request, repo.authenticated)
        except PackyardError as exc:
            return await self.error(scope, receive, send, exc)
        await answer.send(send)

    async def _file(
        self, scope: Scope, receive: Receive, send: Send, repo: RepoInfo, sha256: str, filename: str, day: date | None
    ) -> None:
        authorization = if_none_match = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"if-none-match":
                if_none_match = value
            elif key == b"range":
                return await self.fallback(scope, receive, send)
        if repo.authenticated and not await self._authorized(scope, receive, send, repo, authorization):
            return
        found = self.files.cached(repo.id, sha256, filename, day.isoformat() if day else "")
        if found is False:
            try:  # the database may be out of reach (503)
                found = await run_in_threadpool(self.files.find, repo, sha256, filename, day)
            except PackyardError as exc:
                return await self.error(scope, receive, send, exc)
        if (
            not isinstance(found, ServedFile)
            or found.upstream is not None
            or (found.data is None and not self.store.local)  # an object store's read is a request: a thread's
            or found.blocked is not None
            or (found.data is None and found.size > MAX_INLINE_FILE)
        ):
            return await self.fallback(scope, receive, send)
        body = found.data
        if body is None and scope["method"] == "GET":
            try:  # small and usually in the page cache; a store that lost it or is out of reach says so
                body = self.store.read(found.digest)
            except PackyardError as exc:
                return await self.error(scope, receive, send, exc)
        etag = f'"{found.digest}"'.encode()
        headers = [
            (b"content-type", found.media_type.encode()),
            (b"etag", etag),
            _FILE_PRIVATE if repo.authenticated else _FILE_PUBLIC,
            _RANGES,
        ]
        await self._send(scope, send, headers, etag, if_none_match, str(found.size).encode(), body or b"")

    async def _authorized(
        self, scope: Scope, receive: Receive, send: Send, repo: RepoInfo, authorization: str | None
    ) -> bool:
        try:
            grant: Grant | None = self.auth.cached(authorization)
            if grant is None:
                grant = await run_in_threadpool(self.auth.authenticate, authorization)
            grant.require("repos:read", "repo", repo.name)
        except PackyardError as exc:
            await self.error(scope, receive, send, exc)
            return False
        return True

    @staticmethod
    async def _send(
        scope: Scope,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        etag: bytes,
        if_none_match: bytes | None,
        length: bytes,
        body: bytes,
    ) -> None:
        if if_none_match is not None and etag_matches(etag, if_none_match):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", length))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def snapshot_day(segment: str) -> date | None:
    """The day a `YYYY-MM-DD` URL segment names, if it is one and not in the future."""
    if len(segment) != 10 or segment[4] != "-" or segment[7] != "-":
        return None
    try:
        day = date.fromisoformat(segment)
    except ValueError:
        return None
    return day if day <= datetime.now(UTC).date() else None
