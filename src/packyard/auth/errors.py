"""Errors of the auth domain: API tokens for the repository (Basic `__token__` or Bearer).

PackyardError
└── AuthError                401  (base; not raised itself)
    ├── NotAuthenticated     401  no credentials sent
    ├── InvalidToken         401  malformed, badly signed, expired, revoked or unknown token
    ├── ScopeNotGranted      403  a valid token without the scope or resource needed
    ├── TokensDisabled       403  `[authentication] api_token_auth` is off
    ├── InvalidIdentityToken 401  an OpenID identity token that fails a check (signature, issuer, audience, expiry,
    │                             nonce, replay, a trust rule's claims); the message says which
    ├── IdentityProviderError 502 the OpenID provider could not be read or refused a call
    ├── ExchangeError        400  a malformed token-exchange or device-flow request (OAuth's `error` code)
    └── InvalidTrustRule     400  a trust rule that cannot be made as asked (unknown source, issuer not http(s),
        │                         a claim not `key=value`, no claims)
        └── TrustRuleNotFound 404 no trust rule with that id

A 401 carries `WWW-Authenticate: Basic`, so pip and uv ask for credentials (`http_errors.py`).
"""

from __future__ import annotations

from packyard.errors import PackyardError


class AuthError(PackyardError):
    """The request's credentials do not let it through; catch this for any of the four below."""

    status_code = 401


class NotAuthenticated(AuthError):
    """The request sent no credentials where a token is needed."""


class InvalidToken(AuthError):
    """The token is malformed, badly signed, expired, revoked or unknown."""


class ScopeNotGranted(AuthError):
    """The token is valid but lacks the scope (`repos:read`, `upload`, ...) or the resource asked for."""

    status_code = 403


class TokensDisabled(AuthError):
    """A token was sent while `[authentication] api_token_auth` is off."""

    status_code = 403


class InvalidIdentityToken(AuthError):
    """An identity token (a sign-in's, posit-keyring's or a CI job's) failed one of the checks it must pass."""


class IdentityProviderError(AuthError):
    """The OpenID provider (or a CI issuer) could not be reached, or its answer made no sense."""

    status_code = 502


class ExchangeError(AuthError):
    """A token-exchange or device-flow request OAuth refuses; answered as `{"error": code, "error_description"}`."""

    status_code = 400

    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status_code = status_code


class InvalidTrustRule(AuthError):
    """`packyard trust create` was asked for a rule that cannot be made: nothing is stored; the message says why."""

    status_code = 400


class TrustRuleNotFound(InvalidTrustRule):
    """No trust rule has the id given (`packyard trust remove`)."""

    status_code = 404
