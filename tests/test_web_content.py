"""The content pages (Connect's dashboard) in a real Chromium, for an app deployed with the real rsconnect."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import check_accessibility, new_page, screenshot, sign_in, web_user
from tests.conftest import BIN, Server
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

PASSWORD = "correct horse battery"
# The elements that stick out past the right edge of the window, to say what made a page scroll sideways.
WIDE = """() => [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
    .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`).slice(0, 8)"""


@dataclass
class Deployed:
    pub: Publishing
    guid: str
    output: str  # what rsconnect printed on the last deploy

    @property
    def url(self) -> str:
        return self.pub.server.url

    def served(self, path: str = "") -> dict:
        return self.pub.get(f"/content/{self.guid}/{path}").json()


def set_password(server: Server, name: str, password: str) -> None:
    env = {**os.environ, **server.env, "PACKYARD_DATA_DIR": str(server.data_dir), "NO_COLOR": "1"}
    subprocess.run(
        [str(BIN / "packyard"), "user", "set-password", name, "--password-stdin"],
        input=password + "\n", text=True, env=env, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The FastAPI test app deployed twice by alice (version 1, then 2), so there is a version to roll back to."""
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-web-content")) as server:
        pub = setup_publishing(server, tmp_path_factory.mktemp("publisher-home"))
        set_password(server, "alice", PASSWORD)
        web_user(server, "vera", "viewer", PASSWORD)
        folder = copy_app("fastapi-app", tmp_path_factory.mktemp("apps"))
        pub.deploy("fastapi", folder, "-E", "GREETING=hello from -E", "--title", "Greeting API")
        source = folder / "app.py"
        source.write_text(source.read_text().replace("VERSION = 1", "VERSION = 2"))
        result = pub.deploy("fastapi", folder)
        guid = pub.record(folder)["app_guid"]
        deployed = Deployed(pub, guid, result.stdout + result.stderr)
        assert deployed.served() == {"app": "fastapi", "version": 2}
        yield deployed


def page_of(browser: Browser, app: Deployed, user: str = "alice") -> Page:
    return sign_in(browser, app.url, user, PASSWORD)


def wait_for(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_the_list_and_the_dashboard_urls_rsconnect_printed(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Content").click()
    row = page.get_by_role("row", name=re.compile("Greeting API"))
    expect(row).to_contain_text("API (ASGI)")
    expect(row).to_contain_text("alice")
    expect(row.get_by_role("link", name=f"/content/{app.guid}/")).to_have_attribute(
        "href", f"{app.url}/content/{app.guid}/"
    )
    screenshot(page, "content-list")
    check_accessibility(page)

    page.get_by_label("Filter by title, name, type or owner").fill("no such thing")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("Nothing you can see matches “no such thing”")).to_be_visible()
    page.get_by_label("Filter by title, name, type or owner").fill("greeting")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name=re.compile("Greeting API"))).to_be_visible()

    # The URLs rsconnect printed: the dashboard, a draft (Connect's `/draft/<bundle>`) and the logs.
    dashboard = re.search(r"(http\S+/connect/#/apps/[0-9a-f-]{36})", app.output)
    draft = re.search(r"(http\S+/connect/#/apps/[0-9a-f-]{36}/draft/(\d+))", app.output)
    assert dashboard and draft, app.output
    page.goto(dashboard.group(1))
    page.wait_for_url(f"**/connect/apps/{app.guid}/info")
    expect(page.get_by_role("heading", name="Greeting API", level=1)).to_be_visible()
    page.goto(draft.group(1))
    page.wait_for_url(f"**/connect/apps/{app.guid}/versions#bundle-{draft.group(2)}")
    page.goto(f"{dashboard.group(1)}/logs")
    page.wait_for_url(f"**/connect/apps/{app.guid}/logs")
    page.context.close()

    # Opened while signed out, the dashboard URL leads to sign-in and then to its page.
    page = new_page(browser, app.url)
    page.goto(dashboard.group(1))
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/connect/apps/{app.guid}/info")
    page.context.close()


def test_info_shows_the_url_python_environment_and_processes(app: Deployed, browser: Browser) -> None:
    app.served()  # a process is running
    page = page_of(browser, app)
    page.goto(f"/connect/apps/{app.guid}/info")
    facts = page.locator("dl.facts").first
    expect(facts.get_by_role("link", name=f"{app.url}/content/{app.guid}/")).to_be_visible()
    expect(facts).to_contain_text("python-fastapi")
    key = page.locator("code.key").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", key), key
    assert app.pub.server.cli("env", "list").stdout.count(key[:12]) == 1
    # The CLI takes seconds on a loaded machine, longer than the app's 5 s idle_timeout: wake it, then look.
    app.served()
    jobs = app.pub.api("GET", f"/v1/content/{app.guid}/jobs").json()
    assert jobs
    page.reload()
    expect(page.get_by_role("table", name="Running processes")).to_contain_text(str(jobs[0]["pid"]))
    expect(page.get_by_role("link", name="Info")).to_have_attribute("aria-current", "page")
    screenshot(page, "content-info")
    check_accessibility(page)
    page.context.close()


def test_logs_show_and_refresh(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    page.goto(f"/connect/apps/{app.guid}/logs")
    expect(page.locator("#deploy-log")).to_contain_text("Deployed in")
    expect(page.locator("#app-log")).to_contain_text("[bundle")
    app.served("greeting")
    app.pub.api("PATCH", f"/v1/content/{app.guid}/environment", json=[{"name": "MARK", "value": "x"}])
    page.get_by_role("link", name="Refresh").click()
    expect(page.locator("#app-log")).to_contain_text("Restarting: its environment variables changed.")
    screenshot(page, "content-logs")
    check_accessibility(page)
    page.context.close()


def test_an_environment_variable_changed_on_the_page_reaches_the_app(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    page.goto(f"/connect/apps/{app.guid}/environment")
    expect(page.get_by_role("table", name="Variables of this content")).to_contain_text("GREETING")
    expect(page.get_by_text("hello from -E")).to_have_count(0)  # names only, never values
    page.get_by_label("Name", exact=True).fill("GREETING")
    page.get_by_label("Value").fill("hello from the page")
    page.get_by_role("button", name="Save variable").click()
    expect(page.get_by_role("status").filter(has_text="Saved GREETING")).to_be_visible()
    assert app.served("greeting")["greeting"] == "hello from the page"

    # A bad name is refused beside the field, and nothing changes.
    page.get_by_label("Name", exact=True).fill("1BAD")
    page.get_by_role("button", name="Save variable").click()
    error = page.locator("#var-error")
    expect(error).to_contain_text("Variable name '1BAD' is not valid")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    screenshot(page, "content-environment")
    check_accessibility(page)

    page.get_by_role("button", name="Delete MARK").click()
    expect(page.get_by_role("status").filter(has_text="Deleted MARK")).to_be_visible()
    assert app.pub.api("GET", f"/v1/content/{app.guid}/environment").json() == ["GREETING"]
    page.context.close()


def test_runtime_settings_change_and_bad_values_show_their_error(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    page.goto(f"/connect/apps/{app.guid}/runtime")
    expect(page.get_by_text("server default (").first).to_be_visible()
    page.get_by_label("Max processes").fill("2")
    page.get_by_label("Idle timeout (seconds)").fill("90")
    page.get_by_role("button", name="Save runtime settings").click()
    expect(page.get_by_text("Saved: the content's processes follow the new settings now.")).to_be_visible()
    stored = app.pub.api("GET", f"/v1/content/{app.guid}").json()
    assert (stored["max_processes"], stored["idle_timeout"], stored["load_factor"]) == (2, 90, None)
    expect(page.get_by_label("Max processes")).to_have_value("2")

    page.get_by_label("Load factor").fill("2")
    page.get_by_label("Max connections per process").fill("many")
    page.get_by_label("Max processes").fill("1")
    page.get_by_role("button", name="Save runtime settings").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved: 2 values are not valid.")
    expect(page.locator("#rt-load_factor-error")).to_contain_text("use a number from 0.0 to 1.0")
    expect(page.locator("#rt-max_conns_per_process-error")).to_contain_text("'many' is not a whole number")
    expect(page.get_by_label("Load factor")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Max processes")).to_have_value("1")  # what was typed stays, to be corrected
    screenshot(page, "content-runtime-errors")
    check_accessibility(page)
    page.get_by_label("Load factor").fill("")
    page.get_by_label("Max connections per process").fill("")
    page.get_by_label("Min processes").fill("3")
    page.get_by_role("button", name="Save runtime settings").click()
    expect(page.locator("#rt-min_processes-error")).to_contain_text("is more than max_processes (1)")
    stored = app.pub.api("GET", f"/v1/content/{app.guid}").json()
    assert (stored["max_processes"], stored["min_processes"], stored["load_factor"]) == (2, None, None)
    page.context.close()


def test_a_viewer_sees_shared_content_without_edit_forms(app: Deployed, browser: Browser) -> None:
    viewer = page_of(browser, app, "vera")
    viewer.goto("/connect/")
    expect(viewer.get_by_text("No content yet.")).to_be_visible()
    assert viewer.goto(f"/connect/apps/{app.guid}/info").status == 404

    owner = page_of(browser, app)
    owner.goto(f"/connect/apps/{app.guid}/access")
    expect(owner.get_by_label("Specific users")).to_be_checked()
    owner.get_by_label("All users, login required").check()
    owner.get_by_role("button", name="Save access").click()
    expect(owner.get_by_text("Saved: the new access applies to the next request.")).to_be_visible()
    assert app.pub.api("GET", f"/v1/content/{app.guid}").json()["access_type"] == "logged_in"
    screenshot(owner, "content-access")
    check_accessibility(owner)
    owner.context.close()

    viewer.goto("/connect/")
    viewer.get_by_role("link", name="Greeting API").click()
    tabs = viewer.get_by_role("navigation", name="Tabs")
    expect(tabs.get_by_role("link")).to_have_text(["Info", "Runtime", "Access"])
    expect(viewer.get_by_role("table", name="Running processes")).to_have_count(0)
    viewer.goto(f"/connect/apps/{app.guid}/runtime")
    expect(viewer.get_by_role("table", name="Runtime settings in effect")).to_contain_text("Max processes")
    expect(viewer.locator("form[action*='/connect/apps/']")).to_have_count(0)
    screenshot(viewer, "content-runtime-viewer")
    check_accessibility(viewer)
    for tab in ("environment", "logs", "versions"):
        assert viewer.goto(f"/connect/apps/{app.guid}/{tab}").status == 403
    expect(viewer.locator("main")).to_contain_text("only its owner `alice`, its collaborators and administrators")
    # The server refuses a change even when the form is sent by hand.
    token = viewer.locator("input[name=csrf_token]").first.input_value()
    sent = viewer.request.post(
        f"{app.url}/connect/apps/{app.guid}/runtime", form={"csrf_token": token, "max_processes": "1"}
    )
    assert sent.status == 403
    viewer.context.close()


def test_roll_back_on_the_source_versions_tab(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    page.goto(f"/connect/apps/{app.guid}/versions")
    rows = page.get_by_role("table", name="Versions, newest first").locator("tbody tr")
    expect(rows).to_have_count(2)
    newest, oldest = rows.nth(0), rows.nth(1)
    expect(newest).to_contain_text("Active")
    old_id = oldest.locator("td").first.inner_text()
    new_id = newest.locator("td").first.inner_text()
    expect(newest.get_by_role("button")).to_have_count(0)  # the active version cannot be activated or deleted

    download = page.request.get(f"{app.url}/connect/apps/{app.guid}/versions/{old_id}/download")
    assert download.ok and download.body()[:2] == b"\x1f\x8b"

    page.get_by_role("button", name=f"Activate version {old_id}").click()
    expect(page.get_by_role("heading", name="Activated")).to_be_visible(timeout=60_000)
    expect(page.locator(".task pre")).to_contain_text(f"Bundle {old_id} is active")
    assert app.served() == {"app": "fastapi", "version": 1}
    assert app.pub.api("GET", f"/v1/content/{app.guid}").json()["bundle_id"] == old_id
    expect(page.locator(f"#bundle-{old_id}")).to_contain_text("Active")
    screenshot(page, "content-versions")
    check_accessibility(page)

    page.get_by_role("button", name=f"Delete version {new_id}").click()
    expect(page.get_by_text(f"Deleted version {new_id}.")).to_be_visible()
    expect(rows).to_have_count(1)
    assert [b["id"] for b in app.pub.api("GET", f"/v1/content/{app.guid}/bundles").json()] == [old_id]
    page.context.close()


def test_pages_a_user_may_not_open(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    for path, status in (
        ("/connect/apps/00000000-0000-0000-0000-000000000000/info", 404),
        (f"/connect/apps/{app.guid}/nope", 404),
        (f"/connect/apps/{app.guid}/versions/999/download", 404),
    ):
        response = page.goto(path)
        assert response is not None and response.status == status, path
    expect(page.locator("main")).to_contain_text("has no bundle '999'")
    check_accessibility(page)
    page.context.close()
    anonymous = httpx.get(f"{app.url}/connect/apps/{app.guid}/info")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=/connect/apps/")


def test_content_pages_fit_a_phone(app: Deployed, browser: Browser) -> None:
    page = page_of(browser, app)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/connect/", f"/connect/apps/{app.guid}/info", f"/connect/apps/{app.guid}/versions"):
        page.goto(path)
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{path} scrolls sideways: {page.evaluate(WIDE)}"
    screenshot(page, "content-versions-phone")
    page.context.close()
