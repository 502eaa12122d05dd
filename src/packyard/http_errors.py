"""The one boundary where a PackyardError becomes an HTTP response.

The message goes in the body (problem+json for clients that ask for JSON, like `uv publish`; plain text
otherwise) and in the HTTP reason phrase, because twine shows only `400 Client Error: <reason>` unless
run with `--verbose`.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

try:  # the status-line tables `install_reason_phrases` extends; if uvicorn moves them, nothing is extended
    from uvicorn.protocols.http import h11_impl, httptools_impl
except ImportError:  # pragma: no cover
    h11_impl = httptools_impl = None  # type: ignore[assignment]

from packyard.errors import PackyardError

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
