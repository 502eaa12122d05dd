"""Single sign-on's HTTP surface under `/__api__/`: the device flow (RFC 8628, `device.py`) and token exchange
(RFC 8693), as posit-keyring and CI jobs call them. Answers and errors are OAuth's JSON: `{"access_token", ...}`
or `{"error", "error_description"}`; an error's description is its reason phrase too, because posit-keyring shows
only requests' `raise_for_status()` line ("403 Client Error: <reason> for url: ...") for a status it does not
read."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from packyard.auth import device
from packyard.auth.errors import AuthError, ExchangeError
from packyard.auth.exchange import Exchange, exchange
from packyard.http_errors import REASON, reason_phrase

router = APIRouter()


class OAuthError(JSONResponse):
    """RFC 6749's error body, with the description as the status line's reason phrase."""

    def __init__(self, code: str, description: str, status_code: int) -> None:
        super().__init__({"error": code, "error_description": description}, status_code=status_code)
        self.reason = reason_phrase(description)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = REASON.set(self.reason)
        try:
            await super().__call__(scope, receive, send)
        finally:
            REASON.reset(token)


def oauth_error(exc: AuthError) -> JSONResponse:
    """A check an identity token failed is a 401 whose description says which."""
    code = exc.error if isinstance(exc, ExchangeError) else "invalid_grant"
    return OAuthError(code, str(exc), exc.status_code)


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


async def _device_step(request: Request, fields: tuple[str, str], step: Any) -> Any:
    """Run one device-flow step against the `[oidc]` provider with two fields of the form, in a thread."""
    form = await form_of(request)
    context = request.app.state.packyard
    oidc = context.settings.oidc
    try:
        device.require_oidc(oidc)
        issuer = context.issuers.get(oidc.issuer)
        first, second = (form.get(name, "") for name in fields)
        return await asyncio.to_thread(step, context.db, oidc, issuer, first, second)
    except AuthError as exc:
        return oauth_error(exc)


@router.post("/__api__/device")
async def device_start(request: Request) -> Any:
    """posit-keyring's first step: a device sign-in at the provider, bound to the client's PKCE challenge."""
    return await _device_step(request, ("code_challenge_method", "code_challenge"), device.start)


@router.post("/__api__/device_access")
async def device_access(request: Request) -> Any:
    """posit-keyring's poll: 400 `authorization_pending` until the person has signed in, then the ID token."""
    return await _device_step(request, ("device_code", "code_verifier"), device.poll)
