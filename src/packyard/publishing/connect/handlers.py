"""What every Connect API handler starts with: the caller, the request's JSON, a transaction off the event loop."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from packyard.config import ServerSettings
from packyard.publishing import operations
from packyard.publishing.errors import PublishingError
from packyard.publishing.users import Caller


async def caller(request: Request) -> Caller:
    return await request.app.state.packyard.callers.required(dict(request.headers))


def server(request: Request) -> ServerSettings:
    """Where the server and its content answer (`content_json` writes both)."""
    settings: ServerSettings = request.app.state.packyard.settings.server
    return settings


async def json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body) if body else None
    except ValueError as exc:
        raise PublishingError(f"The request body is not valid JSON ({exc}); send a JSON document.") from exc


def in_thread(request: Request, work: Any) -> Any:
    """Run `work(session)` in one transaction off the event loop."""
    return operations.in_thread(request.app.state.packyard, work)
