"""The one boundary where a PackyardError becomes an HTTP response.

The message goes in the body (problem+json for clients that ask for JSON, like `uv publish`; plain text
otherwise) and in the HTTP reason phrase, because twine shows only `400 Client Error: <reason>` unless
run with `--verbose`. That is how the repository and the upload endpoint answer, and what the app's own
handlers (`install`) send for any path no other surface claims.

The Connect API and the web pages render errors their own way, where they are routed: their routes are a
`SurfaceRoute` subclass whose handler turns a PackyardError, HTTPException or validation error into that
surface's response, and a `SurfaceNotFound` after every other route answers the paths the surface owns but
no route of it matches. No handler looks at a request's path or endpoint module to guess who asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

try:  # the status-line tables `install_reason_phrases` extends; if uvicorn moves them, nothing is extended
    from uvicorn.protocols.http import h11_impl, httptools_impl
except ImportError:  # pragma: no cover
    h11_impl = httptools_impl = None  # type: ignore[assignment]

from packyard.errors import PackyardError

# The errors a surface renders; anything else is a bug and becomes the server's plain 500.
HANDLED: tuple[type[Exception], ...] = (PackyardError, HTTPException, RequestValidationError)
ErrorRenderer = Callable[[Request, Exception], Response]
REASON: ContextVar[str | None] = ContextVar("packyard_reason", default=None)
_WWW_AUTHENTICATE = 'Basic realm="packyard"'


def reason_phrase(message: str) -> str:
    """A status-line-safe copy of the message: one latin-1 line, bounded."""
    text = " ".join(message.replace("`", "").split())
    return text.encode("latin-1", "replace").decode("latin-1")[:400]


class ErrorResponse(Response):
    def __init__(self, exc: PackyardError, status: int | None = None, accept: str = "") -> None:
        code = status or exc.status_code
        self.reason = reason_phrase(exc.message)
        headers = {"www-authenticate": _WWW_AUTHENTICATE} if code == 401 else {}
        headers.update(exc.headers)
        if "json" in accept:
            title = HTTPStatus(code).phrase
            body = json.dumps({"type": "about:blank", "title": title, "status": code, "detail": exc.message})
            super().__init__(body, code, headers, media_type="application/problem+json")
        else:
            super().__init__(exc.message + "\n", code, headers, media_type="text/plain")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = REASON.set(self.reason)
        try:
            await super().__call__(scope, receive, send)
        finally:
            REASON.reset(token)


def error_response(request: Request, exc: PackyardError, status: int | None = None) -> ErrorResponse:
    return ErrorResponse(exc, status, request.headers.get("accept", ""))


async def send_error(scope: Scope, receive: Receive, send: Send, exc: PackyardError, status: int | None = None) -> None:
    accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), "")
    await ErrorResponse(exc, status, accept)(scope, receive, send)


def as_packyard_error(request: Request, exc: Exception) -> tuple[PackyardError, int]:
    """A handled error as the PackyardError and status an API answers with (Starlette's 404 and 405 reworded)."""
    if isinstance(exc, PackyardError):
        return exc, exc.status_code
    if isinstance(exc, RequestValidationError):
        return PackyardError(f"Bad request: {exc.errors()[0].get('msg')}."), 400
    assert isinstance(exc, HTTPException), f"not an error a route's surface renders: {exc!r}"
    message = {
        404: f"Nothing is served at `{request.url.path}`; repository indexes live at `/<repo>/latest/simple/`.",
        405: f"Method {request.method} is not allowed on `{request.url.path}`.",
    }.get(exc.status_code, str(exc.detail))
    return PackyardError(message), exc.status_code


def api_error(request: Request, exc: Exception) -> Response:
    """The repository's answer (problem+json or text, with the reason phrase) to an error."""
    return error_response(request, *as_packyard_error(request, exc))


def install(api: FastAPI) -> None:
    """The app's own handlers: errors of the repository's routes and of paths no surface claims."""

    async def handler(request: Request, exc: Exception) -> Response:
        return api_error(request, exc)

    for kind in HANDLED:
        api.add_exception_handler(kind, handler)


class SurfaceRoute(APIRoute):
    """A route whose errors its surface renders: a subclass sets `render_error`, and any other exception goes
    on to the server's 500 as before."""

    render_error: ErrorRenderer

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        render = type(self).render_error

        async def rendering_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except HANDLED as exc:
                return render(request, exc)

        return rendering_errors

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:  # Starlette would raise 405 to the app
            request = Request(scope, receive)
            await type(self).render_error(request, HTTPException(405))(scope, receive, send)
            return
        await super().handle(scope, receive, send)


class SurfaceNotFound(BaseRoute):
    """The 404 of the paths a surface owns (`prefixes`, or exactly one of `paths`) that none of its routes
    match. Put after every other route. It matches only partially, so a route that has the path but not the
    method still answers 405."""

    def __init__(self, render: ErrorRenderer, prefixes: Sequence[str] = (), paths: Sequence[str] = ()) -> None:
        self.render = render
        self.prefixes = tuple(prefixes)
        self.paths = frozenset(paths)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and (scope["path"] in self.paths or scope["path"].startswith(self.prefixes)):
            return Match.PARTIAL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.render(Request(scope, receive), HTTPException(404))(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)


def install_reason_phrases() -> None:
    """Let uvicorn write our reason phrase into the status line. uvicorn looks status lines up in a module
    dictionary while sending the response start, in the task that set REASON, so a dict that consults it
    is enough. If uvicorn changes shape this quietly does nothing and clients still get the body."""
    if h11_impl is None or httptools_impl is None:  # pragma: no cover
        return

    class StatusLines(dict):
        def __getitem__(self, status: int) -> bytes:
            reason = REASON.get()
            if reason:
                return b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("latin-1"))
            return super().__getitem__(status)

    class Phrases(dict):
        def __getitem__(self, status: int) -> bytes:
            reason = REASON.get()
            return reason.encode("latin-1") if reason else super().__getitem__(status)

    if isinstance(getattr(httptools_impl, "STATUS_LINE", None), dict):
        httptools_impl.STATUS_LINE = StatusLines(httptools_impl.STATUS_LINE)
    if isinstance(getattr(h11_impl, "STATUS_PHRASES", None), dict):
        h11_impl.STATUS_PHRASES = Phrases(h11_impl.STATUS_PHRASES)
