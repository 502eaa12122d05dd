"""The headers the content proxy passes between a client and an app, the same for HTTP and websocket handshakes.

Hop-by-hop headers stay with their connection, and the proxy writes the forwarding headers itself. An app is
any publisher's code, so Packyard's credentials never reach it: no `Authorization` or `X-RSC-Authorization`
header and no cookie of Packyard's goes in, and no `Set-Cookie` of a Packyard cookie name comes out (the app
would replace the viewer's session in their browser).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from starlette.types import Scope

from packyard.publishing.signin import COOKIE_PREFIX

log = logging.getLogger("packyard.proxy")

# RFC 9110 7.6.1: these describe one connection, so each hop writes its own.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# The proxy sets these itself: a client must not forge the prefix or its address, nor who the viewer is
# (`RStudio-Connect-Credentials`, which the proxy writes from the checked caller, and Connect's session token,
# which Packyard does not send), since apps written for Connect trust them.
FORWARDING = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-prefix",
        b"x-rsc-request",
        b"rstudio-connect-credentials",
        b"posit-connect-user-session-token",
    }
)
# Every `Authorization`, whatever its scheme. `Key` carries a Connect API key; Basic, Bearer and `token` may
# carry a Packyard token (requests and curl send netrc's to every path of the host), which cannot be told from
# an app's own credential without a database read per request. An app that takes credentials reads a header
# of its own name.
CREDENTIALS = frozenset({b"authorization", b"x-rsc-authorization"})
REQUEST_DROPS = HOP_BY_HOP | FORWARDING | CREDENTIALS
VIEWER = "packyard.viewer"  # the scope key where the access check leaves the caller it found, or None
_PREFIX = COOKIE_PREFIX.encode()
_BLANKS = b" \t"


def viewer(scope: Scope) -> bytes | None:
    """Connect's `RStudio-Connect-Credentials` value for the signed-in viewer (what Shiny's `session.user` and
    Streamlit read), or None for an anonymous one: who it is, never how they signed in."""
    caller = scope.get(VIEWER)
    if caller is None:
        return None
    return json.dumps({"user": caller.username, "groups": list(caller.groups)}, separators=(",", ":")).encode()


def app_cookies(value: bytes) -> bytes | None:
    """A `Cookie` header's value without Packyard's cookies; None when no cookie is left."""
    if _PREFIX not in value:  # nearly always: nothing to take out
        return value
    kept = [pair.strip(_BLANKS) for pair in value.split(b";") if not _cookie_name(pair).startswith(_PREFIX)]
    return b"; ".join(pair for pair in kept if pair) or None


def packyard_cookie(set_cookie: bytes) -> str | None:
    """The name of the Packyard cookie a `Set-Cookie` value would set in the browser, or None."""
    name = _cookie_name(set_cookie.partition(b";")[0])
    return name.decode("latin-1") if name.startswith(_PREFIX) else None


def _cookie_name(pair: bytes) -> bytes:
    """The name a browser files a `name=value` pair under. A nameless cookie (`=a=b`) goes back to the server
    as `a=b`, which reads as cookie `a`, so that is its name here."""
    name, equals, value = pair.partition(b"=")
    name = name.strip(_BLANKS)
    if not name and equals:
        name = value.partition(b"=")[0].strip(_BLANKS)
    return name


def response_headers(
    headers: Iterable[tuple[bytes, bytes]], drops: frozenset[bytes], guid: str, bundle_id: int
) -> list[tuple[bytes, bytes]]:
    """The response headers (lower-case names) of an app, the bundle of a content, for the client: without
    `drops`, nor any `Set-Cookie` of a Packyard cookie, which is logged."""
    kept = []
    for name, value in headers:
        if name in drops:
            continue
        if name == b"set-cookie":
            cookie = packyard_cookie(value)
            if cookie is not None:
                log.warning(
                    "Content %s (bundle %s) tried to set Packyard's cookie `%s`; the proxy dropped that Set-Cookie.",
                    guid,
                    bundle_id,
                    cookie,
                )
                continue
        kept.append((name, value))
    return kept
