"""Who may reach a content through the proxy, and what serves it: its files, or its process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.types import Scope

from packyard.publishing import content as contents
from packyard.publishing import permissions, signin
from packyard.publishing.errors import Forbidden, InvalidKey, NotFound, SignInFirst
from packyard.publishing.models import Content
from packyard.publishing.proxy.headers import VIEWER
from packyard.publishing.proxy.origins import CONTENT, MAIN, ORIGIN, issue_url
from packyard.publishing.runtime.process import AppProcess
from packyard.publishing.sites.files import Site

if TYPE_CHECKING:
    from packyard.context import AppContext
    from packyard.publishing.users import Caller

_CREDENTIALS = (b"authorization", b"x-rsc-authorization")  # ASGI header names are lower-case
# Seconds a content row and who it is shared with are reused by the proxy, and a browser session is believed,
# without the database. Changes in the change log (a permission, a group, a role, a lock, a sign-out) end them
# sooner, on every node (`AppContext.sync`); these bound only writes that bypass the log.
CONTENT_TTL = 2.0
SESSION_TTL = 2.0
# The session cookie that opens content, by the origin `origins.py` marked the request with (None: no content
# address is set, one origin serves everything). On the main origin with a content address, only API keys.
_COOKIES: dict[str | None, bytes | None] = {
    None: signin.SESSION_COOKIE.encode(),
    CONTENT: signin.CONTENT_COOKIE.encode(),
    MAIN: None,
}


class ContentAccess:
    """The content a URL names and who it is shared with, from a short-lived cache, and whether the caller may
    see it."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self._rows: dict[str, tuple[Content, permissions.Audience, float]] = {}
        self._sessions: dict[str, tuple[Caller | None, float]] = {}

    def forget(self) -> None:
        """Who may see what changed: read content rows, their audiences and sessions again."""
        self._rows = {}
        self._sessions = {}

    async def row(self, guid: str) -> Content:
        return (await self._entry(guid))[0]

    async def _entry(self, guid: str) -> tuple[Content, permissions.Audience, float]:
        hit = self._rows.get(guid)
        if hit is None or hit[2] < time.monotonic():
            hit = await self._reload(guid)
        return hit

    async def _reload(self, guid: str) -> tuple[Content, permissions.Audience, float]:
        try:
            content, audience = await asyncio.to_thread(self._load, guid)
        except NotFound:
            self._rows.pop(guid, None)
            raise
        self._rows[guid] = hit = (content, audience, time.monotonic() + CONTENT_TTL)
        return hit

    async def check(self, scope: Scope, content: Content) -> None:
        """Whether the caller (an API key, else a browser session) may see the content; who it is goes into the
        scope for the app's `RStudio-Connect-Credentials`. An anonymous browser is sent to sign in first."""
        # Only the credential headers: the proxy runs this on every request. Which cookie opens content depends
        # on the origin (`origins.py`): the main session without a content address, the content origin's own
        # session on the content origin, and none on the main origin when content has an origin of its own.
        origin = scope.get(ORIGIN)
        cookie = _COOKIES.get(origin)
        headers: dict[str, str] = {}
        session = ""
        for k, v in scope["headers"]:
            if k in _CREDENTIALS:
                headers[k.decode("latin-1")] = v.decode("latin-1")
            elif k == b"cookie" and cookie is not None and not session:
                session = _session_token(v, cookie)
        caller = await self.context.callers.optional(headers)
        if caller is None and session:
            caller = await self._from_session(session, signin.CONTENT if origin == CONTENT else signin.MAIN)
        scope[VIEWER] = caller
        hit = self._rows.get(content.guid)
        audience = hit[1] if hit is not None and hit[0] is content else (await self._entry(content.guid))[1]
        if permissions.can_view(caller, content, audience):
            return
        # A signed-in caller's refusal is confirmed against the database: a share made a moment ago (on any node)
        # opens the content at once, without waiting for this node's cache or change log. Anonymous refusals stay
        # cached, so a flood of them costs no queries.
        if caller is not None:
            content, audience, _ = await self._reload(content.guid)
            if permissions.can_view(caller, content, audience):
                return
        if caller is None:
            if _wants_page(scope):
                if origin == CONTENT:  # a ticket from the main origin, which signs in first when it must
                    raise SignInFirst(_path_of(scope), issue_url(self.context.settings.server.address))
                raise SignInFirst(_path_of(scope))
            raise InvalidKey(
                f"Content {content.guid} is visible to {_audience(content)}; send `Authorization: Key <key>`, or "
                "sign in at /login in a browser."
            )
        raise Forbidden(
            f"User `{caller.username}` may not see content {content.guid}; ask its owner to share it with you."
        )

    async def _from_session(self, token: str, origin: str) -> Caller | None:
        key = token if origin == signin.MAIN else f"{origin}:{token}"
        hit = self._sessions.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        caller = await asyncio.to_thread(self._find_session, token, origin)
        if len(self._sessions) > 10_000:
            self._sessions.clear()
        self._sessions[key] = (caller, time.monotonic() + SESSION_TTL)
        return caller

    def _find_session(self, token: str, origin: str) -> Caller | None:
        with self.context.db.session() as session:
            found = signin.find_session(session, token, origin)
        return found.caller if found is not None else None

    def _load(self, guid: str) -> tuple[Content, permissions.Audience]:
        with self.context.db.session() as session:
            content = contents.get(session, guid)
            return content, permissions.audience(session, content)


def _session_token(cookie: bytes, name: bytes) -> str:
    """The value of the cookie `name` in a Cookie header, or ""."""
    for part in cookie.split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key == name:
            return value.decode("latin-1")
    return ""


def _wants_page(scope: Scope) -> bool:
    """A browser navigating (it accepts HTML), not an API client or a script asking for data."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    return any(k == b"accept" and b"text/html" in v for k, v in scope["headers"])


def _path_of(scope: Scope) -> str:
    path = scope.get("root_path", "") + scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return path + ("?" + query if query else "")


def _audience(content: Content) -> str:
    return "signed-in users" if content.access_type == "logged_in" else "its owner and the people it is shared with"


def content_resolver(
    context: AppContext, access: ContentAccess | None = None
) -> Callable[[Scope, str, int | None], Awaitable[AppProcess]]:
    access = access or ContentAccess(context)

    async def resolve(scope: Scope, guid: str, bundle_id: int | None) -> AppProcess:
        content = await access.row(guid)
        await access.check(scope, content)
        return await context.deployer.running(content, bundle_id)

    return resolve


def site_resolver(
    context: AppContext, access: ContentAccess
) -> Callable[[Scope, str, int | None], Awaitable[Site | None]]:
    """The files a content serves, for the caller who may see them; None (before any access check) for content
    that runs a process, whose own resolver checks access."""

    async def resolve_site(scope: Scope, guid: str, bundle_id: int | None) -> Site | None:
        content = await access.row(guid)
        checked = False

        async def admit() -> None:  # before any query or build: a caller who may not see it costs neither
            nonlocal checked
            await access.check(scope, content)
            checked = True

        site = await context.deployer.site(content, bundle_id, admit)
        if site is not None and not checked:
            await access.check(scope, content)
        return site

    return resolve_site
