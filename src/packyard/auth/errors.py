"""Errors of the auth domain: API tokens for the repository (Basic `__token__` or Bearer).

PackyardError
└── AuthError                401  (base; not raised itself)
    ├── NotAuthenticated     401  no credentials sent
    ├── InvalidToken         401  malformed, badly signed, expired, revoked or unknown token
    ├── ScopeNotGranted      403  a valid token without the scope or resource needed
    └── TokensDisabled       403  `[authentication] api_token_auth` is off

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
