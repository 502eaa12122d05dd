"""Who may reach a content through the proxy, and what serves it: its files, or its process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.types import Scope

from packyard.publishing import content as contents
from packyard.publishing.errors import Forbidden, InvalidKey, NotFound
from packyard.publishing.models import Content
from packyard.publishing.runtime.process import AppProcess
from packyard.publishing.sites.files import Site

if TYPE_CHECKING:
    from packyard.context import AppContext

_CREDENTIALS = (b"authorization", b"x-rsc-authorization")  # ASGI header names are lower-case
CONTENT_TTL = 2.0  # seconds a content row is reused by the proxy; access changes apply within that


class ContentAccess:
    """The content a URL names, from a short-lived cache, and whether the caller may see it."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self._rows: dict[str, tuple[Content, float]] = {}

    async def row(self, guid: str) -> Content:
        hit = self._rows.get(guid)
        if hit is None or hit[1] < time.monotonic():
            try:
                content = await asyncio.to_thread(self._load, guid)
            except NotFound:
                self._rows.pop(guid, None)
                raise
            self._rows[guid] = hit = (content, time.monotonic() + CONTENT_TTL)
        return hit[0]

    async def check(self, scope: Scope, content: Content) -> None:
        # Only the credential headers: the proxy runs this on every request.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _CREDENTIALS}
        caller = await self.context.callers.optional(headers)
        if not contents.can_view(caller, content):
            if caller is None:
                raise InvalidKey(
                    f"Content {content.guid} is visible to its owner only; send `Authorization: Key <key>`, "
                    "or its owner can set `access_type` to `logged_in` or `all`."
                )
            raise Forbidden(f"User `{caller.username}` may not see content {content.guid}; its owner can share it.")

    def _load(self, guid: str) -> Content:
        with self.context.db.session() as session:
            return contents.get(session, guid)


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
        site = await context.deployer.site(content, bundle_id)
        if site is not None:
            await access.check(scope, content)
        return site

    return resolve_site
