"""Which cookies the content proxy keeps from apps both ways: every cookie whose name starts `packyard_`."""

from __future__ import annotations

import pytest

from packyard.publishing.proxy.headers import app_cookies, packyard_cookie


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        (b"theme=dark", b"theme=dark"),
        (b"theme=dark; packyard_session=abc; cart=3", b"theme=dark; cart=3"),
        (b"packyard_session=abc;packyard_csrf=x", None),
        (b" packyard_session =abc; note=packyard_session", b"note=packyard_session"),
        (b"Packyard_session=abc", b"Packyard_session=abc"),  # cookie names are case-sensitive: not Packyard's
    ],
)
def test_packyards_cookies_are_taken_out_of_a_request(sent: bytes, forwarded: bytes | None) -> None:
    assert app_cookies(sent) == forwarded


@pytest.mark.parametrize(
    ("set_cookie", "name"),
    [
        (b"packyard_session=evil; Path=/", "packyard_session"),
        (b"packyard_csrf=x", "packyard_csrf"),
        (b"packyard_future=x; HttpOnly", "packyard_future"),
        # A nameless cookie goes back to the server as its value alone, `packyard_session=evil`.
        (b"=packyard_session=evil; Path=/", "packyard_session"),
        (b" \tpackyard_session=evil", "packyard_session"),
        (b"theme=packyard_session; Path=/", None),
        (b"echo_own=kept; Path=/packyard_x", None),
    ],
)
def test_a_set_cookie_of_packyards_is_recognised(set_cookie: bytes, name: str | None) -> None:
    assert packyard_cookie(set_cookie) == name
