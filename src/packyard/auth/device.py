"""The OAuth device flow (RFC 8628) as posit-keyring 0.3.2 runs it: `POST /__api__/device` starts it at the sign-in
provider (`[oidc]`) with Packyard's own client, and `POST /__api__/device_access` polls the provider for the ID
token. The client sends no client id or secret, only a PKCE pair (RFC 7636, S256): the challenge is kept here by
the sha256 of the provider's device code, so only the process that started a request can finish it, even when
someone else has seen the device code.

Every refusal is OAuth's `{"error", "error_description"}`; while the person has not finished, a poll answers 400
`authorization_pending` (or `slow_down`), which is what posit-keyring waits on (any other 4xx or a 2xx other
than 200 would end its flow or loop it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete

from packyard.auth.errors import ExchangeError, IdentityProviderError
from packyard.auth.models import DeviceRequest
from packyard.auth.oidc import TIMEOUT, Issuer
from packyard.config import OidcSettings
from packyard.db import Database, utcnow

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# What the provider may answer while the person has not finished, or has refused: passed on as they are.
PENDING = ("authorization_pending", "slow_down")
TERMINAL = ("access_denied", "expired_token")
# RFC 7636: an S256 challenge is 43 base64url characters; a verifier 43 to 128 unreserved characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
DEFAULT_INTERVAL = 5
DEFAULT_EXPIRES_IN = 300


def require_oidc(oidc: OidcSettings) -> None:
    """Single sign-on must be configured for the device flow to mean anything."""
    if not oidc.enabled:
        raise ExchangeError(
            "invalid_request",
            "Single sign-on is not configured on this server, so it cannot start a device sign-in; an administrator "
            "sets `issuer`, `client_id` and `client_secret` in the `[oidc]` section of packyard.toml (or "
            "PACKYARD_OIDC_ISSUER, PACKYARD_OIDC_CLIENT_ID and PACKYARD_OIDC_CLIENT_SECRET). Until then, use an API "
            "token from an administrator.",
            status_code=404,
        )


def challenge_of(verifier: str) -> str:
    """S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def code_hash(device_code: str) -> str:
    return hashlib.sha256(device_code.encode()).hexdigest()


def check_challenge(method: str, challenge: str) -> None:
    if method != "S256":
        raise ExchangeError(
            "invalid_request",
            f"`code_challenge_method` is {method!r}; only `S256` is accepted (RFC 7636), with `code_challenge` the "
            "base64url sha256 of a verifier.",
        )
    if not _CHALLENGE.match(challenge):
        raise ExchangeError(
            "invalid_request",
            f"`code_challenge` is {challenge[:60]!r}; send the 43-character base64url sha256 of the code verifier.",
        )


def _client_form(oidc: OidcSettings) -> dict[str, str]:
    """Packyard's client credentials as `client_secret_post` sends them (a public client sends only its id)."""
    form = {"client_id": oidc.client_id}
    if oidc.client_secret:
        form["client_secret"] = oidc.client_secret
    return form


def _post(url: str, form: dict[str, str], what: str) -> httpx.Response:
    try:
        return httpx.post(url, data=form, timeout=TIMEOUT, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise IdentityProviderError(f"Could not reach the sign-in provider's {what} `{url}` ({exc}).") from exc


def _json(answer: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise IdentityProviderError(
            f"The sign-in provider answered `{url}` with status {answer.status_code} and no JSON object: "
            f"{answer.text[:200]!r}."
        )
    return body


def _refused(body: dict[str, Any], url: str, status: int) -> IdentityProviderError:
    """A provider error that is Packyard's problem (its client, its settings), not the person's."""
    error, description = body.get("error"), body.get("error_description", "")
    hint = {
        "invalid_client": " Check `[oidc] client_id` and `client_secret`, and that the provider lets this client "
        "authenticate with `client_secret_post`.",
        "unauthorized_client": f" Allow the device flow (grant type `{DEVICE_GRANT}`) for Packyard's client "
        "(`[oidc] client_id`) at the provider.",
        "invalid_scope": " Set `[oidc] scopes` to scopes the provider offers this client.",
    }.get(str(error), "")
    return IdentityProviderError(
        f"The sign-in provider refused `{url}` with status {status}: {error!r} ({description}).{hint}"
    )


def start(db: Database, oidc: OidcSettings, issuer: Issuer, method: str, challenge: str) -> dict[str, Any]:
    """Start a device authorization at the provider and keep the client's challenge for its device code; the
    answer is the provider's, as posit-keyring reads it. No transaction is held while the provider answers."""
    require_oidc(oidc)
    check_challenge(method, challenge)
    url = issuer.endpoint("device_authorization_endpoint")
    answer = _post(url, {**_client_form(oidc), "scope": " ".join(oidc.scopes)}, "device authorization endpoint")
    body = _json(answer, url)
    if answer.status_code != 200:
        raise _refused(body, url, answer.status_code)
    device_code, user_code = body.get("device_code"), body.get("user_code")
    # Google names it `verification_url`; RFC 8628 and posit-keyring `verification_uri`.
    uri = body.get("verification_uri") or body.get("verification_url")
    if not (isinstance(device_code, str) and device_code and isinstance(user_code, str) and isinstance(uri, str)):
        raise IdentityProviderError(
            f"The sign-in provider's device authorization at `{url}` lacks `device_code`, `user_code` or "
            f"`verification_uri`: it sent {sorted(body)}."
        )
    expires_in = _seconds(body.get("expires_in"), DEFAULT_EXPIRES_IN)
    interval = _seconds(body.get("interval"), DEFAULT_INTERVAL)
    now = utcnow()
    with db.session() as session:
        session.execute(delete(DeviceRequest).where(DeviceRequest.expires_at <= now))  # requests nobody finished
        session.add(
            DeviceRequest(
                device_code_hash=code_hash(device_code),
                code_challenge=challenge,
                expires_at=now + timedelta(seconds=expires_in),
            )
        )
    reply: dict[str, Any] = {
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": uri,
        "expires_in": expires_in,
        "interval": interval,
    }
    complete = body.get("verification_uri_complete") or body.get("verification_url_complete")
    if isinstance(complete, str):
        reply["verification_uri_complete"] = complete
    return reply


def _seconds(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _forget(db: Database, key: str) -> None:
    with db.session() as session:
        session.execute(delete(DeviceRequest).where(DeviceRequest.device_code_hash == key))


def poll(db: Database, oidc: OidcSettings, issuer: Issuer, device_code: str, verifier: str) -> dict[str, Any]:
    """One poll: the verifier must answer the stored challenge, then the provider is asked for the ID token.
    `{"id_token": ...}` once the person has signed in (and the request is forgotten); ExchangeError (400, OAuth's
    code) while they have not or when they refused."""
    require_oidc(oidc)
    if not device_code:
        raise ExchangeError("invalid_request", "Send the `device_code` that `/__api__/device` answered.")
    key = code_hash(device_code)
    with db.session() as session:
        request = session.get(DeviceRequest, key)
        challenge = request.code_challenge if request is not None and request.expires_at > utcnow() else None
    if challenge is None:
        if request is not None:
            _forget(db, key)
        raise ExchangeError(
            "expired_token",
            "This device code is unknown or has expired; start again (posit-keyring does when pip or uv next asks).",
        )
    if not _VERIFIER.match(verifier) or not hmac.compare_digest(challenge_of(verifier), challenge):
        raise ExchangeError(
            "invalid_grant",
            "The `code_verifier` does not match the `code_challenge` this device sign-in started with (PKCE S256).",
        )
    url = issuer.endpoint("token_endpoint")
    answer = _post(
        url, {**_client_form(oidc), "grant_type": DEVICE_GRANT, "device_code": device_code}, "token endpoint"
    )
    body = _json(answer, url)
    if answer.status_code == 200:
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise IdentityProviderError(
                f"The sign-in provider's token endpoint `{url}` answered without an `id_token`; add `openid` to "
                f"`[oidc] scopes` (now {oidc.scopes})."
            )
        _forget(db, key)
        return {"id_token": id_token}
    error = body.get("error")
    # Some providers (Auth0) answer 403 while pending; posit-keyring waits only on a 400.
    if answer.status_code in (400, 401, 403) and error in PENDING + TERMINAL:
        if error in TERMINAL:
            _forget(db, key)
        description = (
            body.get("error_description")
            or {
                "authorization_pending": "The sign-in has not been finished at the provider yet.",
                "slow_down": "Polling too fast; wait longer between polls.",
                "access_denied": "The sign-in was refused at the provider.",
                "expired_token": "The device code expired before the sign-in was finished; start again.",
            }[str(error)]
        )
        raise ExchangeError(str(error), str(description))
    if answer.status_code == 400 and error == "invalid_grant":  # the provider no longer knows the device code
        _forget(db, key)
        why = body.get("error_description") or "invalid_grant"
        raise ExchangeError(
            "expired_token", f"The sign-in provider no longer knows this device code ({why}); start again."
        )
    raise _refused(body, url, answer.status_code)
