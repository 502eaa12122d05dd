"""Errors of the auth domain.

AuthError
├── NotAuthenticated     401  no credentials sent
├── InvalidToken         401  malformed, badly signed, expired, revoked or unknown token
├── ScopeNotGranted      403  a valid token without the scope or resource needed
└── TokensDisabled       403  `[authentication] api_token_auth` is off
"""

from __future__ import annotations

from packyard.errors import PackyardError


class AuthError(PackyardError):
    status_code = 401


class NotAuthenticated(AuthError):
    pass


class InvalidToken(AuthError):
    pass


class ScopeNotGranted(AuthError):
    status_code = 403


class TokensDisabled(AuthError):
    status_code = 403
