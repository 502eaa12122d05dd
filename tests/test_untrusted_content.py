"""Every publisher and every app is a possible attacker (issue 13), against a real server with the real rsconnect:
Packyard's credentials never reach an app, and an app cannot set Packyard's cookies."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Browser
from websockets.sync.client import connect

from packyard.publishing.proxy.access import CONTENT_TTL
from tests.browser import sign_in, web_user
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

PASSWORD = "correct horse battery"
TAKEOVER = "tried to set Packyard's cookie `packyard_session`; the proxy dropped that Set-Cookie"


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    """Publisher `alice` (rsconnect set up), and viewer `vera`, who signs in to the web pages."""
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-untrusted")) as server:
        pub = setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels="echo")
        web_user(server, "vera", "viewer", PASSWORD)
        yield pub


@pytest.fixture(scope="module")
def echo(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The echo app (tests/apps/echo-app), open to anyone so a browser reaches it with its cookies alone."""
    app = copy_app("echo-app", tmp_path_factory.mktemp("apps"))
    result = pub.deploy("fastapi", app)
    assert "Deployment completed successfully." in result.stdout + result.stderr
    guid = pub.record(app)["app_guid"]
    assert pub.api("PATCH", f"/v1/content/{guid}", json={"access_type": "all"}).status_code == 200
    time.sleep(CONTENT_TTL)  # the proxy's copy of the content row, read by rsconnect's check, is renewed
    return guid


@contextmanager
def signed_in(pub: Publishing, username: str) -> Iterator[httpx.Client]:
    """A client signed in through the real login form: it holds the `packyard_session` cookie."""
    with httpx.Client(base_url=pub.server.url, timeout=60) as client:
        form = client.get("/login").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
        assert answer.status_code == 303 and "packyard_session" in client.cookies, answer.text
        yield client


def packyard_credentials(pub: Publishing, session: str) -> dict[str, str]:
    """A request that carries every credential Packyard takes, beside cookies of the app's own."""
    return {
        "Cookie": f"theme=dark; packyard_session={session}; packyard_csrf=form-token; cart=3",
        "Authorization": f"Key {pub.key}",
        "X-RSC-Authorization": pub.key,
    }


def test_no_credential_of_packyard_reaches_the_app(pub: Publishing, echo: str) -> None:
    with signed_in(pub, "vera") as client:
        session = client.cookies["packyard_session"]
        seen = httpx.get(
            f"{pub.server.url}/content/{echo}/headers", headers=packyard_credentials(pub, session), timeout=60
        ).json()["headers"]
        # Packyard's tokens ride in Authorization too (Bearer, and Basic as netrc sends them): none goes through.
        token = pub.server.upload_token
        basic = base64.b64encode(f"__token__:{token}".encode()).decode()
        for value in (f"Bearer {token}", f"Basic {basic}", f"token {token}"):
            other = client.get(f"/content/{echo}/headers", headers={"Authorization": value}).json()["headers"]
            assert "authorization" not in other, value
            assert "cookie" not in other, other  # the client's jar holds only Packyard's session cookie
    assert seen["cookie"] == ["theme=dark; cart=3"]
    assert "authorization" not in seen and "x-rsc-authorization" not in seen
    assert session not in json.dumps(seen) and pub.key not in json.dumps(seen)


def test_an_app_cannot_set_packyards_cookies(pub: Publishing, echo: str) -> None:
    with signed_in(pub, "vera") as client:
        session = client.cookies["packyard_session"]
        answer = client.get(f"/content/{echo}/set-cookie")
        assert answer.status_code == 200
        assert answer.headers.get_list("set-cookie") == ["echo_own=kept; Path=/"]
        assert client.cookies["packyard_session"] == session and client.cookies["echo_own"] == "kept"
        home = client.get("/")  # still signed in as vera
        assert home.status_code == 200 and "vera" in home.text
    assert TAKEOVER in pub.server.log() and f"Content {echo} (bundle" in pub.server.log()


def test_a_websocket_handshake_carries_no_credential_either_way(pub: Publishing, echo: str) -> None:
    url = pub.server.url.replace("http://", "ws://") + f"/content/{echo}/socket"
    with signed_in(pub, "vera") as client:
        headers = packyard_credentials(pub, client.cookies["packyard_session"])
    with connect(url, origin=pub.server.url, additional_headers=headers, open_timeout=30) as ws:
        seen = json.loads(ws.recv(timeout=30))["headers"]
        set_cookies = ws.response.headers.get_all("Set-Cookie")
    assert seen["cookie"] == ["theme=dark; cart=3"]
    assert "authorization" not in seen and "x-rsc-authorization" not in seen
    assert set_cookies == ["echo_own=kept; Path=/"]


def test_a_signed_in_browser_keeps_its_session_from_the_app(pub: Publishing, echo: str, browser: Browser) -> None:
    page = sign_in(browser, pub.server.url, "vera", PASSWORD)
    try:
        [before] = [c for c in page.context.cookies() if c["name"] == "packyard_session"]
        answer = page.goto(f"/content/{echo}/set-cookie")
        assert answer is not None and answer.status == 200
        seen = answer.json()["headers"]
        assert "cookie" not in seen  # the browser sent only Packyard's cookie, which stayed behind
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies["packyard_session"] == before["value"] and cookies["echo_own"] == "kept"
        assert "packyard_csrf" not in cookies and "" not in cookies
        again = page.goto(f"/content/{echo}/headers")
        assert again is not None and again.json()["headers"]["cookie"] == ["echo_own=kept"]
        page.goto("/")
        assert page.get_by_role("button", name="Sign out").is_visible()
    finally:
        page.context.close()
