"""The pending sign-in and the checks of the provider's answer made before any call to it (publishing/sso.py);
the whole flow against the real provider is tests/test_sso_web.py."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from packyard.auth.oidc import Issuer
from packyard.config import OidcSettings
from packyard.publishing import sso
from packyard.publishing.errors import SignInRefused

SECRET = "s" * 48
ISSUER = "https://login.example.com/realms/main"
OIDC = OidcSettings(issuer=ISSUER, client_id="packyard", client_secret="x", scopes=["openid", "groups"])


@pytest.fixture
def issuer() -> Issuer:
    """An issuer whose discovery document is already read, so nothing here goes on the network."""
    made = Issuer(ISSUER)
    made._document = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth?kc_idp_hint=corp"}
    made._fetched = time.monotonic()
    return made


def test_authorization_request_carries_pkce_state_and_nonce(issuer: Issuer) -> None:
    url, cookie = sso.begin(OIDC, issuer, "https://packyard.example.com/", SECRET, "/connect/")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    pending = sso.read_pending(SECRET, cookie)
    assert url.startswith(f"{ISSUER}/auth?kc_idp_hint=corp&")
    assert query["redirect_uri"] == "https://packyard.example.com/login/oidc/callback"
    assert query["scope"] == "openid groups" and query["response_type"] == "code" and query["client_id"] == "packyard"
    assert query["state"] == pending.state and query["nonce"] == pending.nonce and pending.next == "/connect/"
    digest = hashlib.sha256(pending.verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["code_challenge_method"] == "S256" and "verifier" not in url


def test_pending_sign_in_refuses_missing_altered_foreign_and_expired_cookies(issuer: Issuer) -> None:
    _, cookie = sso.begin(OIDC, issuer, "https://p.example.com", SECRET, "/")
    with pytest.raises(SignInRefused, match="no sign-in in progress"):
        sso.read_pending(SECRET, None)
    with pytest.raises(SignInRefused, match="not one this server made"):
        sso.read_pending("another server's secret", cookie)
    # Signed with the token secret itself (as an API token is) is not a pending sign-in either.
    claims = jwt.decode(cookie, options={"verify_signature": False})
    with pytest.raises(SignInRefused, match="not one this server made"):
        sso.read_pending(SECRET, jwt.encode(claims, SECRET, algorithm="HS256"))
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, sso._key(SECRET), algorithm="HS256")
    with pytest.raises(SignInRefused, match="expired; start again"):
        sso.read_pending(SECRET, expired)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"error": "access_denied", "state": "s"}, r"refused the sign-in \(access_denied: no description\)"),
        ({"code": "c", "state": "other"}, "does not belong to this browser's sign-in"),
        ({"code": "c"}, "does not belong to this browser's sign-in"),
        ({"code": "c", "state": "s", "iss": "https://evil.example.com"}, "names the issuer 'https://evil"),
        ({"state": "s"}, "has no authorization code"),
    ],
)
def test_answers_refused_before_the_code_is_exchanged(issuer: Issuer, answer: dict[str, str], message: str) -> None:
    pending = sso.Pending(state="s", nonce="n", verifier="v", next="/")
    with pytest.raises(SignInRefused, match=message):
        sso.finish(OIDC, issuer, "https://p.example.com", pending, answer)
