"""The web pages' foundation in a real Chromium: sign-in, sessions, CSRF, headers, the look and accessibility."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy
from playwright.sync_api import Browser, expect

from tests.browser import check_accessibility, new_page, screenshot, sign_in, web_user
from tests.conftest import Server, _start, fresh_database

PASSWORD = "correct horse battery"
WRONG = "The user name or password is not right; check both and sign in again."


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fresh_database("sqlite") as url:
        server = _start(tmp_path_factory.mktemp("packyard-web"), url)
        web_user(server, "ada", "admin", PASSWORD)
        web_user(server, "vic", "viewer", PASSWORD)
        try:
            yield server
        finally:
            server.stop()


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login_post(client: httpx.Client, username: str, password: str, next: str = "/") -> httpx.Response:
    token = form_token(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": next})


def signed_in_client(url: str, username: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url)
    response = login_post(client, username, password)
    assert response.status_code == 303 and response.headers["location"] == "/", response.text
    return client


def test_sign_in_and_home(web: Server, browser: Browser) -> None:
    page = new_page(browser, web.url)
    page.goto("/")
    assert page.url == f"{web.url}/login?next=/"
    expect(page.get_by_role("heading", name="Sign in to Packyard")).to_be_visible()
    screenshot(page, "login")
    check_accessibility(page)

    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("not the password")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text(WRONG)
    expect(page.get_by_label("User name")).to_have_value("ada")
    screenshot(page, "login-error")
    check_accessibility(page)
    page.context.close()

    page = sign_in(browser, web.url, "ada", PASSWORD)
    assert page.url == f"{web.url}/"
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Packages", "Content", "Admin"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(page.get_by_role("heading", name="Welcome, ada")).to_be_visible()
    page.keyboard.press("Tab")  # the first stop is the skip link, and it leads to the page's content
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    screenshot(page, "home")
    check_accessibility(page)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web.url}/login")
    page.goto("/")
    assert page.url == f"{web.url}/login?next=/"
    page.context.close()


def test_unknown_user_reads_like_a_wrong_password(web: Server) -> None:
    with httpx.Client(base_url=web.url) as client:
        unknown = login_post(client, "nobody", PASSWORD)
        wrong = login_post(client, "ada", "wrong password")
        empty = login_post(client, "ada", "")
    assert unknown.status_code == wrong.status_code == empty.status_code == 401
    assert WRONG in unknown.text and WRONG in wrong.text and WRONG in empty.text
    assert "packyard_session" not in unknown.headers.get("set-cookie", "")


def test_next_leads_only_to_local_paths(web: Server) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                   "http:/evil.example", "/login", " /x", "/%0d%0aLocation:x\r\n"):  # fmt: skip
        with httpx.Client(base_url=web.url) as client:
            response = login_post(client, "ada", PASSWORD, next=target)
            assert (response.status_code, response.headers["location"]) == (303, "/"), target
    with httpx.Client(base_url=web.url) as client:
        assert login_post(client, "ada", PASSWORD, next="/repos/?q=a b").headers["location"] == "/repos/?q=a%20b"
        page = client.get("/login", params={"next": "https://evil.example/"})
        assert page.status_code == 303  # already signed in: straight to the safe target
        assert page.headers["location"] == "/"
    with httpx.Client(base_url=web.url) as client:
        form = client.get("/login", params={"next": "//evil.example/"}).text
        assert 'name="next" value="/"' in form


def test_posts_without_the_csrf_token_change_nothing(web: Server) -> None:
    with httpx.Client(base_url=web.url) as client:
        client.get("/login")
        for data in ({}, {"csrf_token": "forged"}):
            response = client.post("/login", data={"username": "ada", "password": PASSWORD, **data})
            assert response.status_code == 403
            assert "security token is missing or out of date, so nothing was changed" in response.text
            assert response.headers["content-type"].startswith("text/html")
            assert "packyard_session" not in client.cookies
    with httpx.Client(base_url=web.url) as other:  # another browser's pre-session token is not this one's
        stolen = form_token(other.get("/login").text)
    with httpx.Client(base_url=web.url) as client:
        client.get("/login")
        response = client.post("/login", data={"username": "ada", "password": PASSWORD, "csrf_token": stolen})
        assert response.status_code == 403

    client = signed_in_client(web.url, "ada")
    home = client.get("/")
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": stolen}):
        assert client.post("/logout", data=data).status_code == 403
        assert client.get("/").status_code == 200  # still signed in
    assert client.post("/logout", data={"csrf_token": form_token(home.text)}).headers["location"] == "/login"
    assert client.get("/").status_code == 303
    client.close()


def test_sign_out_ends_the_session_on_the_server(web: Server) -> None:
    client = signed_in_client(web.url, "vic")
    cookie = client.cookies["packyard_session"]
    client.post("/logout", data={"csrf_token": form_token(client.get("/").text)})
    replay = httpx.get(f"{web.url}/", cookies={"packyard_session": cookie})
    assert (replay.status_code, replay.headers["location"]) == (303, "/login?next=/")
    client.close()


def test_locked_user_cannot_sign_in(web: Server) -> None:
    web_user(web, "lee", "publisher", PASSWORD)
    client = signed_in_client(web.url, "lee")
    web.cli("user", "lock", "lee")
    assert client.get("/").status_code == 303  # the open session ended with the lock
    refused = login_post(client, "lee", PASSWORD)
    assert refused.status_code == 403
    assert "User `lee` is locked; an administrator can unlock the account." in refused.text
    web.cli("user", "unlock", "lee")
    assert login_post(client, "lee", PASSWORD).status_code == 303
    client.close()


def test_pages_send_security_headers_and_no_inline_script(web: Server) -> None:
    client = signed_in_client(web.url, "ada")
    for path in ("/", "/login?next=/x", "/login/nothing-here"):
        response = client.get(path, follow_redirects=False) if path != "/login?next=/x" else httpx.get(web.url + path)
        assert response.headers["content-type"].startswith("text/html"), path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cache-control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
        assert " style=" not in response.text and "<style" not in response.text, path
    missing = client.get("/login/nothing-here")
    assert missing.status_code == 404
    assert "There is no page at `/login/nothing-here`; start again from the home page." in missing.text
    css = re.search(r'href="(/static/packyard\.css\?v=[0-9a-f]+)"', client.get("/").text)
    assert css, "the page links its stylesheet by content hash"
    first = client.get(css.group(1))
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert first.headers["content-type"] == "text/css; charset=utf-8"
    again = client.get(css.group(1), headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/static/packyard.css?v=old").headers["cache-control"] == "no-cache"
    assert client.get("/static/nothing.js").status_code == 404
    client.close()


def test_viewer_sees_no_admin(web: Server, browser: Browser) -> None:
    page = sign_in(browser, web.url, "vic", PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Packages")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    expect(page.get_by_role("heading", name="Admin")).to_have_count(0)
    response = page.goto("/admin/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Forbidden (403)")).to_be_visible()
    expect(page.get_by_text("only administrators may open this page")).to_be_visible()
    screenshot(page, "forbidden")
    check_accessibility(page)
    page.context.close()


def test_home_fits_a_phone(web: Server, browser: Browser) -> None:
    page = sign_in(browser, web.url, "ada", PASSWORD)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    screenshot(page, "home-phone")
    check_accessibility(page)
    page.context.close()


def test_sessions_expire_on_postgresql(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The schema on PostgreSQL, and `[web] session_lifetime`: an expired session signs the browser out."""
    with fresh_database("postgresql") as url:
        server = _start(tmp_path_factory.mktemp("packyard-web-pg"), url, {"PACKYARD_WEB_SESSION_LIFETIME": "2"})
        try:
            web_user(server, "ada", "admin", PASSWORD)
            client = signed_in_client(server.url, "ada")
            assert client.get("/").status_code == 200
            engine = sqlalchemy.create_engine(server.sql_url)
            with engine.connect() as db:
                assert db.execute(sqlalchemy.text("SELECT count(*) FROM web_sessions")).scalar() == 1
            cookie = client.cookies["packyard_session"]
            time.sleep(2.2)
            # The browser drops the cookie by its max-age; the server refuses it anyway and deletes the row.
            late = httpx.get(f"{server.url}/", cookies={"packyard_session": cookie})
            assert late.headers["location"] == "/login?next=/"
            with engine.connect() as db:
                assert db.execute(sqlalchemy.text("SELECT count(*) FROM web_sessions")).scalar() == 0
            engine.dispose()
            client.close()
        finally:
            server.stop()


NOT_SERVED = "Nothing is served at `{}`; repository indexes live at `/<repo>/latest/simple/`."


def test_each_surface_answers_errors_its_own_way(web: Server) -> None:
    """The same kinds of error get Connect's JSON from the Connect API, an HTML page from the pages, and
    text or problem+json (with the message as the reason phrase) from the repository."""
    key = web.cli("key", "create", "--user", "ada", "-q").stdout.strip()
    api = httpx.Client(base_url=web.url, headers={"Authorization": f"Key {key}"})
    unknown = api.get("/__api__/v1/nothing-here")
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, "application/json")
    assert unknown.json() == {"error": NOT_SERVED.format("/__api__/v1/nothing-here"), "code": 4, "payload": None}
    bad_guid = api.get("/__api__/v1/content/not-a-guid")
    assert bad_guid.status_code == 404
    assert bad_guid.json() == {"error": bad_guid.json()["error"], "code": 4, "payload": None}
    assert "not-a-guid" in bad_guid.json()["error"]
    wrong_method = api.put("/__api__/v1/user")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {
        "error": "Method PUT is not allowed on `/__api__/v1/user`.",
        "code": 3,
        "payload": None,
    }
    no_key = httpx.get(f"{web.url}/__api__/v1/user")
    assert no_key.status_code == 401 and no_key.json()["code"] == 30 and no_key.json()["payload"] is None
    api.close()

    client = signed_in_client(web.url, "ada")
    for path in ("/connect/apps/not-a-guid/info", "/admin/nothing-here", "/repos/nothing-here/"):
        page = client.get(path)
        assert (page.status_code, page.headers["content-type"]) == (404, "text/html; charset=utf-8"), path
        assert "<h1" in page.text and "payload" not in page.text, path
    assert (
        "There is no page at `/admin/nothing-here`; start again from the home page."
        in client.get("/admin/nothing-here").text
    )
    wrong_method = client.put("/connect/")
    assert (wrong_method.status_code, wrong_method.headers["content-type"]) == (405, "text/html; charset=utf-8")
    assert "`/connect/` does not take PUT requests; use the page&#39;s links." in wrong_method.text
    client.close()
    anonymous = httpx.get(f"{web.url}/connect/apps/not-a-guid/info", follow_redirects=False)
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/login?next=/connect/apps/not-a-guid/info")

    for path in ("/nothing/here", "/__api__/nothing-here"):
        text = httpx.get(web.url + path)
        assert (text.status_code, text.headers["content-type"]) == (404, "text/plain; charset=utf-8"), path
        assert text.text == NOT_SERVED.format(path) + "\n"
        assert text.reason_phrase == NOT_SERVED.format(path).replace("`", "")
        problem = httpx.get(web.url + path, headers={"Accept": "application/json"})
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.json() == {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": NOT_SERVED.format(path),
        }
    repository = httpx.get(f"{web.url}/nothing-here/latest/simple/", headers={"Accept": "application/json"})
    assert (repository.status_code, repository.headers["content-type"]) == (404, "application/problem+json")
    assert repository.json()["detail"].startswith("Repository `nothing-here` does not exist.")
