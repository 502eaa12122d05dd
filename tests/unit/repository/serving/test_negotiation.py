"""PEP 691 negotiation for the Accept headers real clients send."""

from __future__ import annotations

import pytest

from packyard.repository.serving.negotiation import negotiate

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        ("*/*", "text/html"),
        ("application/*", HTML),
        ("text/html", "text/html"),
        ("text/html, application/xhtml+xml, */*;q=0.8", "text/html"),  # a browser
        (f"{JSON}, {HTML}; q=0.1, text/html; q=0.01", JSON),  # pip
        (f"{JSON}, {HTML};q=0.2, text/html;q=0.01", JSON),  # uv
        (f"{JSON}, */*;q=0.1", JSON),  # poetry
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.latest+html", HTML),
        (f"{JSON};q=0, text/html", "text/html"),
        (f"{JSON};q=bogus, {HTML}", HTML),
        ("application/xml", None),
        (f"{JSON};q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected
