"""An identity token of a person (from the sign-in provider) exchanged for a token that reads the authenticated
repositories their groups may read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packyard.auth.errors import ExchangeError

if TYPE_CHECKING:
    from packyard.auth.exchange import Exchange


def exchange(server: Exchange, token: str) -> dict[str, Any]:
    raise ExchangeError("invalid_grant", "Exchanging a person's identity token is not built yet.")
