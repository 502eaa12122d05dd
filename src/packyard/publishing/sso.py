"""Sign-in through the company's OpenID provider (`[oidc]`), the authorization code flow with PKCE (S256), state and
nonce. `begin` makes the provider's authorization URL and the pending sign-in the browser keeps until it comes back
(a short-lived HS256 JWT in an HttpOnly cookie, so no table is needed); `finish` checks the provider's answer against
it, exchanges the code for tokens and verifies the identity token. `publishing/identity.py` then makes the user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

from packyard.auth.errors import IdentityProviderError
from packyard.auth.oidc import TIMEOUT, Issuer
from packyard.config import OidcSettings
from packyard.publishing.errors import SignInRefused

CALLBACK_PATH = "/login/oidc/callback"
# Long enough to type a password and answer a second factor at the provider; short enough that a pending sign-in
# left in a browser is useless soon after.
PENDING_LIFETIME = 600
_AUDIENCE = "packyard-oidc-sign-in"  # a pending sign-in is never mistaken for any other JWT this server signs


@dataclass(frozen=True)
class Pending:
    """A sign-in on its way through the provider: what its answer must match, and where the user goes after."""

    state: str
    nonce: str
    verifier: str  # PKCE's code_verifier; the provider saw only its S256 challenge
    next: str


def redirect_uri(address: str) -> str:
    """The callback the provider sends browsers back to; register it at the provider exactly like this."""
    return address.rstrip("/") + CALLBACK_PATH


def provider_name(oidc: OidcSettings) -> str:
    return oidc.display_name or urlsplit(oidc.issuer).hostname or oidc.issuer


def _key(secret: str) -> bytes:
    # A key of its own, derived from the token secret: a pending sign-in cannot be replayed as an API token, nor
    # the other way round, whatever either's claims say.
    return hmac.new(secret.encode(), b"packyard oidc pending sign-in", hashlib.sha256).digest()


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin(oidc: OidcSettings, issuer: Issuer, address: str, secret: str, next: str) -> tuple[str, str]:
    """The provider's authorization URL, and the signed pending sign-in for the browser to keep until it is back."""
    pending = Pending(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48), next)
    query = {
        "response_type": "code",
        "client_id": oidc.client_id,
        "redirect_uri": redirect_uri(address),
        "scope": " ".join(oidc.scopes),
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": _challenge(pending.verifier),
        "code_challenge_method": "S256",
    }
    endpoint = issuer.endpoint("authorization_endpoint")
    url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)
    claims = {**pending.__dict__, "aud": _AUDIENCE, "exp": int(time.time()) + PENDING_LIFETIME}
    return url, jwt.encode(claims, _key(secret), algorithm="HS256")


def read_pending(secret: str, cookie: str | None) -> Pending:
    """The pending sign-in of this browser's cookie; SignInRefused when there is none, or it expired or was altered."""
    if not cookie:
        raise SignInRefused(
            "This browser has no sign-in in progress (its cookie is missing, or the sign-in already finished); "
            "start again from the login page."
        )
    try:
        claims = jwt.decode(cookie, _key(secret), algorithms=["HS256"], audience=_AUDIENCE)
    except jwt.ExpiredSignatureError as exc:
        raise SignInRefused(
            f"The sign-in took longer than {PENDING_LIFETIME // 60} minutes and expired; start again from the login "
            "page."
        ) from exc
    except jwt.PyJWTError as exc:
        raise SignInRefused(
            "This browser's sign-in cookie is not one this server made; start again from the login page."
        ) from exc
    return Pending(str(claims["state"]), str(claims["nonce"]), str(claims["verifier"]), str(claims["next"]))


def finish(
    oidc: OidcSettings, issuer: Issuer, address: str, pending: Pending, answer: Mapping[str, str]
) -> dict[str, Any]:
    """The verified claims of the identity token the provider's answer (the callback's query) leads to."""
    if answer.get("error"):
        description = answer.get("error_description") or "no description"
        raise SignInRefused(
            f"The provider refused the sign-in ({answer['error']}: {description}); try again, or ask its "
            "administrator whether you may use Packyard."
        )
    state = answer.get("state") or ""
    if not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise SignInRefused(
            "The provider's answer does not belong to this browser's sign-in (its state does not match); start again "
            "from the login page."
        )
    # RFC 9207: a provider that names itself in the answer must be the one asked (no mix-up between providers).
    if answer.get("iss") and answer["iss"].rstrip("/") != issuer.url:
        raise SignInRefused(
            f"The answer names the issuer {answer['iss']!r}, not `{issuer.url}`; start again from the login page."
        )
    code = answer.get("code")
    if not code:
        raise SignInRefused("The provider's answer has no authorization code; start again from the login page.")
    tokens = _exchange(oidc, issuer, address, pending, code)
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise SignInRefused(
            "The provider's token answer has no identity token; check that `[oidc] scopes` includes `openid`."
        )
    return issuer.verify(id_token, audience=oidc.client_id, nonce=pending.nonce)


def _exchange(oidc: OidcSettings, issuer: Issuer, address: str, pending: Pending, code: str) -> dict[str, Any]:
    """The token endpoint's answer for the code. Client authentication is `client_secret_post` unless the provider
    offers only `client_secret_basic`."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(address),
        "code_verifier": pending.verifier,
        "client_id": oidc.client_id,
    }
    methods = issuer.document().get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth: tuple[str, str] | None = None
    if "client_secret_post" in methods:
        form["client_secret"] = oidc.client_secret
    else:
        auth = (oidc.client_id, oidc.client_secret)
    endpoint = issuer.endpoint("token_endpoint")
    try:
        response = httpx.post(endpoint, data=form, auth=auth, timeout=TIMEOUT, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise IdentityProviderError(
            f"Could not reach the provider's token endpoint `{endpoint}` ({exc}); try again, and tell an "
            "administrator if it repeats."
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", response.status_code) if isinstance(body, dict) else response.status_code
        description = body.get("error_description", "") if isinstance(body, dict) else ""
        if error == "invalid_client":
            raise IdentityProviderError(
                f"The provider does not accept Packyard's client credentials ({description or error}); an "
                "administrator should check `[oidc] client_id` and `client_secret`."
            )
        raise SignInRefused(
            f"The provider refused the authorization code ({error}{': ' + description if description else ''}); "
            "a code works once and for a few minutes, so start again from the login page."
        )
    return body
