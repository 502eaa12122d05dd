"""Page tests: Playwright driving Debian's Chromium against a real server, screenshots and axe-core checks.

Playwright's own browser download never runs; `make test` installs Debian's `chromium` when it is missing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import BIN, ROOT, Server

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
_axe = Axe()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium; conftest's fixture `browser` holds one per test module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser: Browser, server_url: str, width: int = 1280, height: int = 800) -> Page:
    """A fresh browser context (no cookies) that may use the clipboard of `server_url`; close with
    `page.context.close()`."""
    context = browser.new_context(base_url=server_url, viewport={"width": width, "height": height})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server_url)
    context.set_default_timeout(15_000)
    return context.new_page()


def sign_in(browser: Browser, server_url: str, username: str, password: str) -> Page:
    """A page signed in through the real login form, on the home page; close with `page.context.close()`."""
    page = new_page(browser, server_url)
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    assert page.get_by_role("button", name="Sign out").is_visible(), f"{username} did not get signed in"
    return page


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG in `test-artifacts/screenshots/<name>.png` at the repository root."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def check_accessibility(page: Page) -> None:
    """axe-core in the page; fails on any violation of impact serious or critical."""
    results = _axe.run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    if bad:
        lines = [
            f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
            for v in bad
        ]
        raise AssertionError(f"accessibility violations on {page.url}:\n" + "\n".join(lines))


def web_user(server: Server, name: str, role: str, password: str) -> None:
    """Create a user with a web password through the real CLI (`packyard user create --password-stdin`)."""
    env = {**os.environ, **server.env, "PACKYARD_DATA_DIR": str(server.data_dir), "NO_COLOR": "1"}
    result = subprocess.run(
        [str(BIN / "packyard"), "user", "create", name, "--role", role, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, f"packyard user create {name} failed:\n{result.stdout}\n{result.stderr}"
