"""`[server] content_address` (issue 14): content on an origin of its own, against a real server, the real rsconnect
and Chromium. A content page's script reads nothing of Packyard's with an administrator's session; a viewer still
reaches content (HTTP and websockets) through a single-use ticket from the main origin; tickets and their `next`
are checked; each origin takes only its own session. Chromium resolves `*.localhost` to loopback; httpx reaches
the content origin on 127.0.0.1 with its Host header."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from packyard.publishing.proxy.access import CONTENT_TTL, SESSION_TTL
from tests.browser import new_page, sign_in, web_user
from tests.conftest import free_port
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

PASSWORD = "correct horse battery"
PORT = free_port()
MAIN = f"http://127.0.0.1:{PORT}"
HOST = f"content.localhost:{PORT}"
CONTENT = f"http://{HOST}"
ONLY_CONTENT = f"this origin serves content only, at `/content/<guid>/`. Packyard's pages and API are at {MAIN}."


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    """Publisher `alice`, administrator `ada` and viewer `vera` (web passwords), content on its own origin."""
    env = {"PACKYARD_SERVER_CONTENT_ADDRESS": CONTENT}
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-origin"), env, port=PORT) as server:
        pub = setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels="echo")
        web_user(server, "ada", "admin", PASSWORD)
        web_user(server, "vera", "viewer", PASSWORD)
        yield pub


def deploy(pub: Publishing, kind: str, name: str, dest: Path) -> str:
    """Deploy a test app with rsconnect (on the main origin, with its key) for signed-in users only."""
    app = copy_app(name, dest)
    result = pub.deploy(kind, app)
    assert "Deployment completed successfully." in result.stdout + result.stderr
    guid = str(pub.record(app)["app_guid"])
    assert pub.api("PATCH", f"/v1/content/{guid}", json={"access_type": "logged_in"}).status_code == 200
    return guid


@pytest.fixture(scope="module")
def spy(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A static site (tests/apps/origin-spy) whose script tries Packyard's pages and API."""
    guid = deploy(pub, "html", "origin-spy", tmp_path_factory.mktemp("spy"))
    time.sleep(CONTENT_TTL)
    return guid


@pytest.fixture(scope="module")
def echo(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The echo app: what reaches it, over HTTP and its websocket."""
    guid = deploy(pub, "fastapi", "echo-app", tmp_path_factory.mktemp("echo"))
    time.sleep(CONTENT_TTL)
    return guid


@contextmanager
def signed_in(username: str) -> Iterator[httpx.Client]:
    """A client signed in on the main origin through the login form: it holds `packyard_session`."""
    with httpx.Client(base_url=MAIN, timeout=60) as client:
        form = client.get("/login").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
        assert answer.status_code == 303 and "packyard_session" in client.cookies, answer.text
        yield client


def on_content(path: str, cookie: str = "", accept: str = "text/html", key: str = "") -> httpx.Response:
    """A GET to the content origin (the same server, named by the Host header), following no redirect."""
    headers = {"Host": HOST, "Accept": accept, **({"Cookie": cookie} if cookie else {})}
    if key:
        headers["Authorization"] = f"Key {key}"
    return httpx.get(MAIN + path, headers=headers, timeout=60)


def ticket_url(client: httpx.Client, target: str) -> str:
    """The main origin's redirect to the content origin's ticket endpoint, as a path and query there."""
    answer = client.get("/login/content-ticket", params={"next": target})
    assert answer.status_code == 303, answer.text
    assert answer.headers["cache-control"] == "no-store" and answer.headers["referrer-policy"] == "no-referrer"
    location = answer.headers["location"]
    assert location.startswith(f"{CONTENT}/__packyard__/ticket?ticket="), location
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def content_session(client: httpx.Client, target: str) -> str:
    """Redeem a fresh ticket: the content origin's session token."""
    answer = on_content(ticket_url(client, target))
    assert answer.status_code == 303, answer.text
    return answer.headers["set-cookie"].split(";", 1)[0].removeprefix("packyard_content=")


# -- a hostile content page's script ------------------------------------------------------------------------------


def test_a_content_script_reads_nothing_of_packyards_with_an_admins_session(
    pub: Publishing, spy: str, browser: Browser
) -> None:
    page = sign_in(browser, MAIN, "ada", PASSWORD)
    try:
        # The main origin sends the browser to the content origin, which gets a ticket from the main origin.
        page.goto(f"/content/{spy}/?main={quote(MAIN, safe='')}")
        page.wait_for_url(f"{CONTENT}/content/{spy}/?main=**")
        page.wait_for_function("document.getElementById('report').textContent.length > 0")
        report = json.loads(page.locator("#report").inner_text())
        cookies = page.context.cookies()
    finally:
        page.context.close()
    assert report["origin"] == CONTENT
    assert report["cookies"] == ""  # the content origin's session cookie is HttpOnly
    # Same origin: Packyard's pages and API are not there.
    for name in ("admin", "user", "users", "home"):
        assert report[name]["status"] == 404, (name, report[name])
        assert ONLY_CONTENT in report[name]["body"], (name, report[name])
        assert "ada" not in report[name]["body"] and "Administration" not in report[name]["body"]
    # Cross-origin with the browser's credentials: CORS lets the script read nothing.
    for name in ("mainAdmin", "mainUser"):
        assert "error" in report[name] and "Failed to fetch" in report[name]["error"], (name, report[name])
    assert report["mainAdminOpaque"] == {"status": 0, "type": "opaque", "body": ""}
    # Each origin holds its own cookie; the main session never went to the content origin.
    by_host = {(c["domain"], c["name"]): c for c in cookies}
    assert set(by_host) == {("127.0.0.1", "packyard_session"), ("content.localhost", "packyard_content")}
    content_cookie = by_host[("content.localhost", "packyard_content")]
    assert content_cookie["httpOnly"] and content_cookie["sameSite"] == "Lax" and content_cookie["path"] == "/"


# -- the viewer still gets there ----------------------------------------------------------------------------------


def test_an_anonymous_viewer_signs_in_on_the_main_origin_and_comes_back_to_the_content(
    pub: Publishing, echo: str, browser: Browser
) -> None:
    page = new_page(browser, MAIN)
    try:
        page.goto(f"{CONTENT}/content/{echo}/headers?tab=2")
        page.wait_for_url(f"{MAIN}/login?next=**")
        page.get_by_label("User name").fill("vera")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        # Through /login/content-ticket and the content origin's ticket endpoint (the login page's CSP lets the
        # form's redirects end there).
        page.wait_for_url(f"{CONTENT}/content/{echo}/headers?tab=2")
        seen = json.loads(page.locator("body").inner_text())["headers"]
        assert seen["rstudio-connect-credentials"] == ['{"user":"vera","groups":[]}']
        assert "cookie" not in seen  # the content session that let her in stayed behind
        # The page's own websocket, from the content origin, with the content session.
        message = page.evaluate(
            """url => new Promise((resolve, reject) => {
                const socket = new WebSocket(url);
                socket.onmessage = event => resolve(event.data);
                socket.onerror = () => reject(new Error("websocket refused"));
            })""",
            f"ws://{HOST}/content/{echo}/socket",
        )
        handshake = json.loads(message)["headers"]
        assert handshake["rstudio-connect-credentials"] == ['{"user":"vera","groups":[]}']
        assert "packyard_" not in json.dumps(handshake)
        # A second content needs no new sign-in: the content session opens it.
        answer = page.goto(f"{CONTENT}/content/{echo}/again")
        assert answer is not None and answer.status == 200 and page.url == f"{CONTENT}/content/{echo}/again"
    finally:
        page.context.close()


# -- tickets ------------------------------------------------------------------------------------------------------


def test_a_ticket_is_used_once_and_sets_a_cookie_for_the_content_host_alone(pub: Publishing, echo: str) -> None:
    with signed_in("vera") as client:
        redeem = ticket_url(client, f"/content/{echo}/headers?tab=2")
    first = on_content(redeem)
    assert first.status_code == 303 and first.headers["location"] == f"/content/{echo}/headers?tab=2"
    [cookie] = first.headers.get_list("set-cookie")
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert name_value.startswith("packyard_content=")
    assert sorted(a.split("=")[0].lower() for a in attributes) == ["httponly", "max-age", "path", "samesite"]
    assert "Path=/" in attributes and "SameSite=lax" in attributes  # no Domain: this host alone; http: no Secure
    seen = on_content(f"/content/{echo}/headers", cookie=name_value).json()["headers"]
    assert seen["rstudio-connect-credentials"] == ['{"user":"vera","groups":[]}'] and "cookie" not in seen
    again = on_content(redeem)
    assert again.status_code == 403 and "set-cookie" not in again.headers
    assert again.text == (
        "This sign-in ticket is not known or was already used: a ticket opens the content origin once. "
        "Open the content's address again to get a new one.\n"
    )
    forged = on_content(f"/__packyard__/ticket?ticket=forged&next=/content/{echo}/")
    assert forged.status_code == 403 and "not known or was already used" in forged.text
    assert "set-cookie" not in forged.headers


def test_an_expired_ticket_opens_nothing(pub: Publishing, echo: str) -> None:
    with signed_in("vera") as client:
        redeem = ticket_url(client, f"/content/{echo}/")
    # Sixty seconds pass (the clock is moved, not waited for).
    with sqlite3.connect(pub.server.data_dir / "packyard.db") as db:
        db.execute("UPDATE content_tickets SET expires_at = '2000-01-01 00:00:00.000000'")
    answer = on_content(redeem)
    assert answer.status_code == 403 and "set-cookie" not in answer.headers
    assert "This sign-in ticket expired: a ticket is valid for 60 seconds." in answer.text


@pytest.mark.parametrize(
    "target",
    ["http://evil.example/content/x/", "//evil.example/content/x/", "/admin/", "/content/../admin/", "/\\evil.example"],
)
def test_a_hostile_next_is_refused_with_no_cookie(pub: Publishing, echo: str, target: str) -> None:
    refusal = "A content ticket leads only to a content path such as `/content/&lt;guid&gt;/`, not to"
    with signed_in("vera") as client:
        issued = client.get("/login/content-ticket", params={"next": target})
        assert issued.status_code == 400 and refusal in issued.text  # a page, escaped
        assert "location" not in issued.headers and "set-cookie" not in issued.headers
        redeem = ticket_url(client, f"/content/{echo}/")
    hostile = redeem.split("&next=")[0] + "&next=" + quote(target, safe="")
    answer = on_content(hostile)
    assert answer.status_code == 400 and "location" not in answer.headers and "set-cookie" not in answer.headers
    assert refusal.replace("&lt;", "<").replace("&gt;", ">") in answer.text


# -- each origin, its own session and its own paths ---------------------------------------------------------------


def test_each_origin_takes_only_its_own_session(pub: Publishing, echo: str) -> None:
    with signed_in("vera") as client:
        main = client.cookies["packyard_session"]
        content = content_session(client, f"/content/{echo}/")
    # The main session opens nothing on the content origin: the browser is sent for a ticket.
    there = on_content(f"/content/{echo}/headers", cookie=f"packyard_session={main}")
    assert there.status_code == 303
    assert there.headers["location"] == f"{MAIN}/login/content-ticket?next=/content/{echo}/headers"
    api = on_content(f"/content/{echo}/headers", cookie=f"packyard_session={main}", accept="application/json")
    assert api.status_code == 401
    # A content session opens nothing on the main origin, under either cookie name.
    for cookie in (f"packyard_session={content}", f"packyard_content={content}"):
        home = httpx.get(f"{MAIN}/connect/", headers={"Cookie": cookie})
        assert home.status_code == 303 and home.headers["location"].startswith("/login?next=")
        served = httpx.get(f"{MAIN}/content/{echo}/headers", headers={"Cookie": cookie})
        assert served.status_code == 303 and served.headers["location"] == f"{CONTENT}/content/{echo}/headers"


def test_the_main_origin_sends_browsers_on_and_serves_api_clients(pub: Publishing, echo: str) -> None:
    get = httpx.get(f"{MAIN}/content/{echo}/headers?x=1&y=%2F")
    assert get.status_code == 303 and get.headers["location"] == f"{CONTENT}/content/{echo}/headers?x=1&y=%2F"
    post = httpx.post(f"{MAIN}/content/{echo}/form", data={"a": "1"})
    assert post.status_code == 307 and post.headers["location"] == f"{CONTENT}/content/{echo}/form"
    # rsconnect and the API's clients keep working on the main origin with their key.
    seen = pub.get(f"/content/{echo}/headers").json()["headers"]
    assert seen["rstudio-connect-credentials"] == ['{"user":"alice","groups":[]}']
    socket = f"ws://127.0.0.1:{PORT}/content/{echo}/socket"
    with pytest.raises(InvalidStatus) as refused:
        connect(socket, origin=MAIN, open_timeout=30)
    assert refused.value.response.status_code == 404
    assert f"Content opens websockets on its own origin, {CONTENT}" in refused.value.response.body.decode()
    with connect(socket, origin=MAIN, additional_headers=pub.headers, open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=30))["headers"]["rstudio-connect-credentials"] == [
            '{"user":"alice","groups":[]}'
        ]
    # ... and on the content origin too.
    assert on_content(f"/content/{echo}/headers", key=pub.key).status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/admin/", "/__api__/v1/user", "/__api__/v1/users", "/login", "/connect/", "/pypi/latest/simple/"]
)
def test_the_content_origin_serves_nothing_but_content(pub: Publishing, path: str) -> None:
    with signed_in("ada") as client:
        content = content_session(client, "/content/")
    for headers in ({"Cookie": f"packyard_content={content}"}, pub.headers):
        answer = httpx.get(MAIN + path, headers={"Host": HOST, **headers})
        assert (
            answer.status_code == 404 and answer.text == f"Nothing is served at `{path}` on {CONTENT}: {ONLY_CONTENT}\n"
        )


def test_signing_out_ends_the_content_session(pub: Publishing, echo: str) -> None:
    with signed_in("vera") as client:
        content = content_session(client, f"/content/{echo}/")
        assert on_content(f"/content/{echo}/headers", cookie=f"packyard_content={content}").status_code == 200
        page = client.get("/").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    time.sleep(SESSION_TTL)  # the proxy's copy of the session
    answer = on_content(f"/content/{echo}/headers", cookie=f"packyard_content={content}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{MAIN}/login/content-ticket?next=/content/{echo}/headers"


def test_the_admin_overview_says_where_content_is_served(pub: Publishing) -> None:
    with signed_in("ada") as client:
        overview = client.get("/admin/").text
    assert f"Content is served on its own origin, {CONTENT}" in overview
    assert "Content is served from this server's own origin" not in overview


def test_the_api_gives_the_content_url_on_its_own_origin(pub: Publishing, spy: str) -> None:
    described = pub.api("GET", f"/v1/content/{spy}").json()
    assert described["content_url"] == f"{CONTENT}/content/{spy}/"
    assert described["dashboard_url"] == f"{MAIN}/connect/#/apps/{spy}"  # Packyard's own page stays on the main one
