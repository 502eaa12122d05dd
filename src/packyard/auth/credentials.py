"""Read a token from an `Authorization` header: Basic (user `__token__`), Bearer or `token`."""

from __future__ import annotations

import base64
import binascii


def token_from_header(value: str | None) -> str | None:
    """The token, or None when no usable credentials were sent (an empty password counts as none)."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, _, password = decoded.partition(":")
        return password or None
    if scheme in {"bearer", "token"}:
        return rest or None
    return None
