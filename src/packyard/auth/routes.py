"""Single sign-on's HTTP surface under `/__api__/`: token exchange (RFC 8693), as posit-keyring and CI jobs call
it. Answers and errors are OAuth's JSON: `{"access_token", ...}` or `{"error", "error_description"}`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from packyard.auth.errors import AuthError, ExchangeError
from packyard.auth.exchange import Exchange, exchange

router = APIRouter()


def oauth_error(exc: AuthError) -> JSONResponse:
    """RFC 6749's error body; a check an identity token failed is a 401 whose description says which."""
    code = exc.error if isinstance(exc, ExchangeError) else "invalid_grant"
    return JSONResponse({"error": code, "error_description": str(exc)}, status_code=exc.status_code)


def exchanger(request: Request) -> Exchange:
    context = request.app.state.packyard
    return Exchange(context.settings, context.db, context.settings.token_secret(), context.issuers)


async def form_of(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


@router.post("/__api__/token")
async def token(request: Request) -> Any:
    form = await form_of(request)
    try:
        return await asyncio.to_thread(exchange, exchanger(request), form)
    except AuthError as exc:
        return oauth_error(exc)
