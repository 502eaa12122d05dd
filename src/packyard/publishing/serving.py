"""Who may reach a content's process through the proxy, and which process serves it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.types import Scope

from packyard.publishing import content as contents
from packyard.publishing.errors import Forbidden, NotFound
from packyard.publishing.models import Content
from packyard.publishing.runtime import AppProcess
from packyard.publishing.users import InvalidKey

if TYPE_CHECKING:
    from packyard.context import AppContext

_CREDENTIALS = (b"authorization", b"x-rsc-authorization")  # ASGI header names are lower-case
CONTENT_TTL = 2.0  # seconds a content row is reused by the proxy; access changes apply within that


def content_resolver(context: AppContext) -> Callable[[Scope, str, int | None], Awaitable[AppProcess]]:
    rows: dict[str, tuple[Content, float]] = {}

    def load(guid: str) -> Content:
        with context.db.session() as session:
            return contents.get(session, guid)

    async def resolve(scope: Scope, guid: str, bundle_id: int | None) -> AppProcess:
        # Only the credential headers: the proxy runs this on every request.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _CREDENTIALS}
        caller = await context.callers.optional(headers)
        hit = rows.get(guid)
        if hit is None or hit[1] < time.monotonic():
            try:
                content = await asyncio.to_thread(load, guid)
            except NotFound:
                rows.pop(guid, None)
                raise
            rows[guid] = hit = (content, time.monotonic() + CONTENT_TTL)
        content = hit[0]
        if not contents.can_view(caller, content):
            if caller is None:
                raise InvalidKey(
                    f"Content {guid} is visible to its owner only; send `Authorization: Key <key>`, "
                    "or its owner can set `access_type` to `logged_in` or `all`."
                )
            raise Forbidden(f"User `{caller.username}` may not see content {guid}; its owner can share it.")
        return await context.publisher.running(content, bundle_id)

    return resolve
