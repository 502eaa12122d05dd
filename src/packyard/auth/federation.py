"""Identity federation: a CI job's OIDC token, from an issuer a trust rule names and with the claims it requires,
exchanged for a short-lived token that uploads to the rule's source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packyard.auth.errors import ExchangeError

if TYPE_CHECKING:
    from packyard.auth.exchange import Exchange


def exchange(server: Exchange, token: str, issuer: str) -> dict[str, Any]:
    raise ExchangeError("invalid_grant", f"No trust rule names the issuer `{issuer}`.")
