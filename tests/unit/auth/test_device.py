"""The device flow's PKCE check (RFC 7636, S256) and what posit-keyring's liveness check offers at the root."""

from __future__ import annotations

import base64

import pytest

from packyard.auth.device import challenge_of, check_challenge
from packyard.auth.errors import ExchangeError
from packyard.auth.root_probe import offered_token


def test_challenge_is_rfc_7636s_example() -> None:
    # RFC 7636, appendix B.
    assert challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("method", "challenge", "fragment"),
    [
        ("plain", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "`code_challenge_method` is 'plain'; only `S256`"),
        ("S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", "`code_challenge` is 'E9Mel"),
        ("S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "the 43-character base64url sha256"),
    ],
)
def test_bad_challenges_are_refused(method: str, challenge: str, fragment: str) -> None:
    with pytest.raises(ExchangeError) as caught:
        check_challenge(method, challenge)
    assert caught.value.error == "invalid_request" and caught.value.status_code == 400
    assert fragment in str(caught.value)


def test_good_challenge_passes() -> None:
    check_challenge("S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "offered"),
    [
        (basic("__token__", "t"), True),  # posit-keyring
        ("Bearer t", True),  # pak
        (basic("alice", "proxy-password"), False),  # a reverse proxy's own credentials: a browser's page
        ("Key abc", False),  # a Connect API key
        ("Basic !!!", False),
        (None, False),
    ],
)
def test_the_root_checks_only_a_token_offered_as_the_clients_offer_it(header: str | None, offered: bool) -> None:
    headers = [] if header is None else [(b"authorization", header.encode())]
    assert (offered_token({"headers": headers}) is not None) is offered
