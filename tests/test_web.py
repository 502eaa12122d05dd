"""The web pages' foundation in a real Chromium: sign-in, sessions, CSRF, headers, the look and accessibility."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import check_accessibility, new_page, screenshot, sign_in, web_user
from tests.conftest import Server, _start, fresh_database

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fresh_database("sqlite") as url:
        server = _start(tmp_path_factory.mktemp("packyard-web"), url)
        web_user(server, "ada", "admin", PASSWORD)
        try:
            yield server
        finally:
            server.stop()


def test_sign_in_and_home(web: Server, browser: Browser) -> None:
    page = new_page(browser, web.url)
    page.goto("/")
    assert page.url == f"{web.url}/login?next=/"
    expect(page.get_by_role("heading", name="Sign in to Packyard")).to_be_visible()
    screenshot(page, "login")
    check_accessibility(page)
    page.context.close()

    page = sign_in(browser, web.url, "ada", PASSWORD)
    assert page.url == f"{web.url}/"
    nav = page.get_by_role("navigation", name="Main")
    for name in ("Packages", "Content", "Admin"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(page.get_by_role("heading", name="Welcome, ada")).to_be_visible()
    screenshot(page, "home")
    check_accessibility(page)
    page.context.close()
