"""The hot path: `GET /{repo}/latest/simple/` and `/{repo}/latest/simple/{project}/` as raw ASGI.

Pages are rendered at write time and cached in memory, so a read is a dictionary lookup and a send.
Anything this path does not answer (other URLs, methods, unknown repositories) goes to the main app.
"""

from __future__ import annotations

from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.auth.authenticator import Authenticator
from packyard.auth.tokens import Grant
from packyard.errors import PackyardError
from packyard.repository.names import normalize
from packyard.repository.negotiation import TEXT_HTML, negotiate
from packyard.repository.page_cache import MISSING, CachedPage, PageCache, RepoInfo
from packyard.repository.pages import JSON_TYPE

_VARY = (b"vary", b"Accept")
# Clients revalidate with If-None-Match on every resolve, so a new upload is visible at once.
_CACHE_PUBLIC = (b"cache-control", b"max-age=0, must-revalidate")
_CACHE_PRIVATE = (b"cache-control", b"private, max-age=0, must-revalidate")
_TYPES = {
    JSON_TYPE: JSON_TYPE.encode(),
    TEXT_HTML: b"text/html; charset=utf-8",
}


class SimpleIndexApp:
    def __init__(self, pages: PageCache, auth: Authenticator, fallback: ASGIApp, error: ErrorSender) -> None:
        self.pages = pages
        self.auth = auth
        self.fallback = fallback
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.fallback(scope, receive, send)
        parts = scope["path"].split("/")
        # ['', repo, 'latest', 'simple', project, ''] for a project page; [..., 'simple', ''] for the root.
        n = len(parts)
        if n not in (5, 6) or parts[3] != "simple" or parts[2] != "latest" or parts[-1] != "":
            return await self.fallback(scope, receive, send)
        repo = self.pages.repos.get(parts[1])
        if repo is None:
            return await self.fallback(scope, receive, send)
        project = parts[4] if n == 6 else ""
        if project and "/" not in project and project != normalize(project):
            return await self.fallback(scope, receive, send)  # the main app redirects to the normal name

        accept = authorization = if_none_match = None
        for key, value in scope["headers"]:
            if key == b"accept":
                accept = value.decode("latin-1")
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"if-none-match":
                if_none_match = value
        query = scope.get("query_string")
        if query and query.startswith(b"format="):
            accept = query[7:].decode("latin-1").replace("%2B", "+").replace("%2b", "+")

        if repo.authenticated:
            try:
                await self._authorize(repo, authorization)
            except PackyardError as exc:
                return await self.error(scope, receive, send, exc)

        media = negotiate(accept)
        if media is None:
            return await self.error(
                scope,
                receive,
                send,
                PackyardError(
                    "None of the media types in `Accept` is served here; ask for "
                    f"`{JSON_TYPE}`, `application/vnd.pypi.simple.v1+html` or `text/html`."
                ),
                status=406,
            )

        page = self.pages.get(repo.id, project)
        if page is None:
            page = await run_in_threadpool(self.pages.load, repo.id, project)
        if page is MISSING:
            return await self.fallback(scope, receive, send)
        assert isinstance(page, CachedPage)

        if media == JSON_TYPE:
            body, etag, length = page.json, page.json_etag, page.json_length
        else:
            body, etag, length = page.html, page.html_etag, page.html_length
        headers = [
            (b"content-type", _TYPES.get(media) or media.encode()),
            (b"etag", etag),
            _VARY,
            _CACHE_PRIVATE if repo.authenticated else _CACHE_PUBLIC,
        ]
        if if_none_match is not None and etag in if_none_match:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", length))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _authorize(self, repo: RepoInfo, authorization: str | None) -> Grant:
        grant = self.auth.cached(authorization)
        if grant is None:
            grant = await run_in_threadpool(self.auth.authenticate, authorization)
        grant.require("repos:read", "repo", repo.name)
        return grant


class ErrorSender(Protocol):
    """Renders a PackyardError as a response (the app's one error boundary)."""

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exc: PackyardError, status: int | None = None
    ) -> None: ...
