"""`POST /__api__/token`: RFC 8693 token exchange. An identity token from the sign-in provider (`[oidc]`; what
posit-keyring sends after its device flow, or from `PACKAGEMANAGER_IDENTITY_TOKEN_FILE`) becomes a short-lived
token that reads the repositories its user's groups may read (`person_tokens.py`); a CI job's token from an
issuer a trust rule names becomes a short-lived token that uploads to that rule's source (`federation.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packyard.auth import federation, person_tokens
from packyard.auth.errors import ExchangeError
from packyard.auth.oidc import Issuers, unverified_issuer
from packyard.config import Settings
from packyard.db import Database

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


@dataclass
class Exchange:
    """What an exchange needs of the server: its settings, database and the issuers it has met."""

    settings: Settings
    db: Database
    secret: str
    issuers: Issuers


def parse(form: Mapping[str, str]) -> tuple[str, str]:
    """The subject token and its type from an RFC 8693 request; ExchangeError (400) for a malformed one."""
    grant = form.get("grant_type", "")
    if grant != GRANT_TYPE:
        raise ExchangeError("unsupported_grant_type", f"`grant_type` is {grant!r}; send `{GRANT_TYPE}`.")
    token, kind = form.get("subject_token", ""), form.get("subject_token_type", "")
    if not token:
        raise ExchangeError("invalid_request", "Send the identity token as `subject_token`.")
    if kind not in (ID_TOKEN, JWT, ACCESS_TOKEN):
        raise ExchangeError(
            "invalid_request", f"`subject_token_type` is {kind!r}; send `{ID_TOKEN}` (or `{JWT}` for a CI token)."
        )
    return token, kind


def answer(token: str, lifetime: int) -> dict[str, Any]:
    return {"access_token": token, "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": lifetime}


def exchange(server: Exchange, form: Mapping[str, str]) -> dict[str, Any]:
    """Dispatch by the token's issuer: the sign-in provider's tokens name a person, any other issuer's a CI job
    that a trust rule must allow. Either way every check runs before a claim is believed."""
    token, _ = parse(form)
    issuer = unverified_issuer(token)
    oidc = server.settings.oidc
    if oidc.enabled and issuer == oidc.issuer.rstrip("/"):
        return answer(*person_tokens.exchange(server, token))
    return answer(*federation.exchange(server, token, issuer))
