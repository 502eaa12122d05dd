"""Verify request credentials, caching verified tokens so a hot read does no I/O."""

from __future__ import annotations

from packyard.auth import tokens
from packyard.auth.credentials import token_from_header
from packyard.auth.errors import InvalidToken, NotAuthenticated, TokensDisabled
from packyard.auth.tokens import Grant
from packyard.db import Database

MAX_CACHED = 10_000


class Authenticator:
    def __init__(self, db: Database, secret: str, enabled: bool) -> None:
        self.db = db
        self.secret = secret
        self.enabled = enabled
        self._verified: dict[str, Grant] = {}

    def cached(self, header: str | None) -> Grant | None:
        """The grant for an already verified, unexpired token, else None (call `authenticate`)."""
        token = token_from_header(header)
        grant = self._verified.get(token) if token else None
        if grant is not None and tokens.is_expired(grant):
            return None
        return grant

    def authenticate(self, header: str | None) -> Grant:
        """Verify credentials; may read the database, so call it off the event loop."""
        if not self.enabled:
            raise TokensDisabled(
                "API tokens are turned off on this server; an administrator sets "
                "`api_token_auth = true` in the `[authentication]` section of packyard.toml."
            )
        token = token_from_header(header)
        if token is None:
            raise NotAuthenticated(
                "Authentication required: send an API token as the password of user "
                "`__token__` (netrc, keyring or the URL) or as `Authorization: Bearer`."
            )
        grant = self._verified.get(token)
        if grant is None:
            grant = tokens.decode(token, self.secret)
            with self.db.session() as session:
                tokens.check_not_revoked(session, grant)
            if len(self._verified) >= MAX_CACHED:
                self._verified.clear()
            self._verified[token] = grant
        if tokens.is_expired(grant):
            self._verified.pop(token, None)
            raise InvalidToken(tokens.expired_message(grant.description, dict(grant.scopes)))
        return grant

    def forget(self, jti: str) -> None:
        """Drop a revoked token from the cache; the next request re-checks the database."""
        for token, grant in list(self._verified.items()):
            if grant.jti == jti:
                del self._verified[token]
