"""posit-keyring's liveness check of a cached token: `GET {PACKAGEMANAGER_ADDRESS}` (this server's root) with
Basic `__token__:<token>` (pak, the R client, sends it as Bearer). It keeps the token while the answer is below 500
and neither 401 nor 403, and runs the device flow again otherwise, so the root must refuse an invalid, expired or
revoked token. The root is a page for browsers (the home page, or a redirect to sign in), which a valid token
still gets; only a request offering a token this way is checked, so a browser behind a proxy that sends its own
Basic credentials is left alone."""

from __future__ import annotations

import asyncio
import base64
import binascii

from starlette.types import Scope

from packyard.auth.authenticator import Authenticator
from packyard.auth.errors import AuthError

ROOT = "/"


def offered_token(scope: Scope) -> str | None:
    """The `Authorization` header when it offers a token as posit-keyring or pak do, else None."""
    header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return header
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return header if user == "__token__" else None
    return None


async def refusal(auth: Authenticator, scope: Scope) -> AuthError | None:
    """Why the root refuses this request's token (401: invalid, expired, revoked; 403: tokens are off), or None
    when it offers none or a valid one."""
    header = offered_token(scope)
    if header is None or auth.cached(header) is not None:
        return None
    try:
        await asyncio.to_thread(auth.authenticate, header)
    except AuthError as exc:
        return exc
    return None
