"""Content on an origin of its own (`[server] content_address`): one server answers two origins, told apart by
the Host header.

- The main origin (`[server] address`) serves Packyard's pages, API and repositories. A browser asking it for
  `/content/...` is sent to the same path on the content origin; an API client (`Authorization: Key`) is served
  where it asks, with its key alone: cookies never open content on the main origin.
- The content origin serves `/content/...` through the proxy and `TICKET_PATH`, nothing else: a content page's
  script that fetches `/admin/` or `/__api__/...` on its own origin gets a 404.
- A browser without a content-origin session is sent to the main origin's `ISSUE_PATH` (web/auth_pages.py),
  which, for a signed-in user, issues a single-use ticket and redirects to `TICKET_PATH` here; redeeming it
  starts a content-origin session whose cookie (`signin.CONTENT_COOKIE`) is set for the content host alone. The
  main session's cookie is never sent to the content origin, and a content session opens nothing on the main one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.errors import PackyardError
from packyard.publishing import signin
from packyard.publishing.errors import BadContentTarget, ContentElsewhere, NotFound, PublishingError
from packyard.publishing.proxy.http import PREFIX, ContentProxy, ErrorSender
from packyard.publishing.users import key_from_headers

if TYPE_CHECKING:
    from packyard.context import AppContext

ORIGIN = "packyard.origin"  # scope key: which origin a request came to, when a content address is set
MAIN, CONTENT = signin.MAIN, signin.CONTENT
TICKET_PATH = "/__packyard__/ticket"  # on the content origin: redeem a ticket, set the content cookie
ISSUE_PATH = "/login/content-ticket"  # on the main origin: issue a ticket to a signed-in browser
_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def content_target(target: str | None) -> str:
    """Where a ticket may lead: a `/content/...` path (and query) of this server, nothing else. Another host,
    `//host`, a backslash, a control character, a `..` segment or a path outside `/content/` is refused."""
    shown = repr(target or "")[:200]
    if not target or not target.startswith(PREFIX) or "\\" in target or any(ord(ch) < 0x20 for ch in target):
        raise BadContentTarget(
            f"A content ticket leads only to a content path such as `/content/<guid>/`, not to {shown}; "
            "open the content's address again."
        )
    parts = urlsplit(target)
    segments = unquote(parts.path).split("/")
    if parts.scheme or parts.netloc or ".." in segments or "." in segments or "\\" in unquote(parts.path):
        raise BadContentTarget(
            f"A content ticket leads only to a content path such as `/content/<guid>/`, not to {shown}; "
            "open the content's address again."
        )
    return target


def issue_url(main_address: str) -> str:
    """Where the content origin sends a browser that has no session there: the main origin's ticket endpoint."""
    return main_address.rstrip("/") + ISSUE_PATH


def redeem_url(content_address: str, ticket: str, target: str) -> str:
    return f"{content_address}{TICKET_PATH}?{urlencode({'ticket': ticket, 'next': target})}"


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


class Origins:
    """The front of the app when a content address is set: each request to the origin that serves it."""

    def __init__(self, context: AppContext, proxy: ContentProxy, main: ASGIApp, send_error: ErrorSender) -> None:
        settings = context.settings
        self.context = context
        self.proxy = proxy
        self.main = main
        self.send_error = send_error
        self.address = settings.server.address.rstrip("/")
        self.content_address = settings.server.content_address
        parts = urlsplit(self.content_address)
        self.secure = parts.scheme == "https"
        self.lifetime = timedelta(seconds=settings.web.session_lifetime)
        # The Host header values that name the content origin: its authority, with or without the default port.
        authority = self.content_address.split("://", 1)[1]
        default = {"http": 80, "https": 443}[parts.scheme]
        self._hosts = frozenset({authority.encode(), f"{authority}:{default}".encode()})

    def on_content_origin(self, scope: Scope) -> bool:
        host = next((v for k, v in scope["headers"] if k == b"host"), b"")
        return host.lower() in self._hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.main(scope, receive, send)
        path = scope["path"]
        if self.on_content_origin(scope):
            scope[ORIGIN] = CONTENT
            if self.proxy.matches(path):
                return await self.proxy(scope, receive, send)
            if scope["type"] == "http" and path == TICKET_PATH:
                return await self.redeem(scope, receive, send)
            return await self._refuse(scope, receive, send, self._not_here(path))
        scope[ORIGIN] = MAIN
        if not self.proxy.matches(path):
            return await self.main(scope, receive, send)
        if key_from_headers({k: _header(scope, k.encode()) for k in ("authorization", "x-rsc-authorization")}):
            return await self.proxy(scope, receive, send)  # an API client: its key, never a cookie
        if scope["type"] == "websocket":
            message = f"Content opens websockets on its own origin, {self.content_address}, not on {self.address}."
            return await self._refuse(scope, receive, send, NotFound(message))
        raw = scope.get("raw_path") or quote(path).encode()
        query = scope.get("query_string", b"")
        url = self.content_address + raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        await self.send_error(scope, receive, send, ContentElsewhere(url, scope["method"]))

    def _not_here(self, path: str) -> NotFound:
        return NotFound(
            f"Nothing is served at `{path}` on {self.content_address}: this origin serves content only, at "
            f"`/content/<guid>/`. Packyard's pages and API are at {self.address}."
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: PackyardError) -> None:
        if scope["type"] == "websocket":
            if (await receive())["type"] != "websocket.connect":
                return
            return await self.proxy.refuse(scope, receive, send, exc)
        await self.send_error(scope, receive, send, exc)

    async def redeem(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET TICKET_PATH?ticket=...&next=/content/...`: use the ticket once, set the content origin's cookie
        for this host, and go on to `next`. A bad `next` or ticket is refused with no cookie."""
        if scope["method"] not in ("GET", "HEAD"):
            exc = PublishingError(f"`{TICKET_PATH}` takes GET requests: the redirect from {self.address}.")
            return await self.send_error(scope, receive, send, exc, 405)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            target = content_target((query.get("next") or [""])[0])
            ticket = (query.get("ticket") or [""])[0]
            token = await asyncio.to_thread(self._redeem, ticket)
        except PackyardError as exc:
            exc.headers = {**exc.headers, **_NO_STORE}
            return await self.send_error(scope, receive, send, exc)
        response = RedirectResponse(target, status_code=303, headers=_NO_STORE)
        response.set_cookie(
            signin.CONTENT_COOKIE,
            token,
            max_age=int(self.lifetime.total_seconds()),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )  # no Domain: the content host alone, never its parent or siblings
        await response(scope, receive, send)

    def _redeem(self, ticket: str) -> str:
        with self.context.db.session() as session:
            return signin.redeem_ticket(session, ticket, self.lifetime)
