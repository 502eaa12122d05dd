"""Sharing on the pages (issue 14) in a real Chromium: an administrator makes a group and chooses its members; a
publisher shares a content with a user and a group from its Access tab, changes a role and removes one; a viewer
sees no forms; refused input says why and changes nothing; the admin overview says what changed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, select, text

from packyard.db import Database
from packyard.publishing.models import Content, User
from tests.browser import check_accessibility, screenshot, sign_in, web_user
from tests.conftest import Server, _start, fresh_database

PASSWORD = "correct horse battery"
GUID = "6f1c1b8e-0000-4000-8000-0000000000e1"
ACCESS = f"/connect/apps/{GUID}/access"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Ada administers, pat owns a report, paul publishes too, vera and vic view."""
    with fresh_database("sqlite") as url:
        server = _start(tmp_path_factory.mktemp("packyard-web-sharing"), url)
        for name, role in (("ada", "admin"), ("pat", "publisher"), ("paul", "publisher"), ("vera", "viewer")):
            web_user(server, name, role, PASSWORD)
        web_user(server, "vic", "viewer", PASSWORD)
        db = Database(server.sql_url)  # content as a deploy leaves it (deploys have their own tests)
        try:
            with db.session() as session:
                pat = session.scalar(select(User.id).where(User.username == "pat"))
                session.add(Content(guid=GUID, name="sales-report", title="Sales report", owner_id=pat))
        finally:
            db.dispose()
        try:
            yield server
        finally:
            server.stop()


def events(server: Server, prefix: str) -> list[tuple[str, str]]:
    engine = create_engine(server.sql_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT kind, detail FROM events WHERE kind LIKE :p ORDER BY id")
            return [(kind, detail) for kind, detail in conn.execute(query, {"p": prefix + "%"})]
    finally:
        engine.dispose()


def submit(page: Page, button: str) -> int:
    """Click a form's button; the status of the answer to its POST (after a redirect, the page it led to)."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    response = answer.value
    return response.status if response.status != 303 else 200


def notice(page: Page) -> str:
    return page.locator(".notice").first.inner_text()


def look(page: Page, name: str) -> None:
    screenshot(page, name)
    check_accessibility(page)


def opens(server: Server, who: str) -> bool:
    """Whether `who`'s API key reads the content (the server's own access check)."""
    key = server.cli("key", "create", "--user", who, "-q").stdout.strip()
    answer = httpx.get(f"{server.url}/__api__/v1/content/{GUID}", headers={"Authorization": f"Key {key}"})
    assert answer.status_code in (200, 403), answer.text
    return answer.status_code == 200


def test_an_admin_makes_a_group_and_chooses_its_members(web: Server, browser: Browser) -> None:
    page = sign_in(browser, web.url, "ada", PASSWORD)
    page.goto("/admin/")
    page.get_by_role("navigation", name="Tabs").get_by_role("link", name="Groups").click()
    expect(page.get_by_role("heading", name="Groups", level=1)).to_be_visible()
    expect(page.get_by_text("No groups yet")).to_be_visible()

    for name in ("analysts", "temporary"):
        page.get_by_label("Group name").fill(name)
        assert submit(page, "Create group") == 200
        assert notice(page) == f"Created group `{name}`; open it to add members."
    page.get_by_label("Group name").fill("analysts")
    assert submit(page, "Create group") == 409
    assert notice(page) == "Group `analysts` already exists; `packyard group list` shows every group."
    expect(page.get_by_label("Group name")).to_have_value("analysts")
    expect(page.get_by_role("row", name="analysts")).to_contain_text("0")
    look(page, "admin-groups")
    page.get_by_role("button", name="Delete group temporary").click()
    assert "Deleted group `temporary`" in notice(page)
    expect(page.get_by_role("row", name="temporary")).to_have_count(0)

    page.get_by_role("link", name="analysts").click()
    expect(page.get_by_role("heading", name="Group analysts")).to_be_visible()
    suggested = page.locator("#member-names option").evaluate_all("(options) => options.map((o) => o.value)")
    assert suggested == ["ada", "pat", "paul", "vera", "vic"]
    for name in ("vera", "vic"):
        page.get_by_label("User name").fill(name)
        assert submit(page, "Add member") == 200
        assert notice(page) == f"Added `{name}` to `analysts`; they see what is shared with the group now."
    page.get_by_label("User name").fill("nobody")
    assert submit(page, "Add member") == 404
    assert notice(page) == "There is no user `nobody`; `packyard user create nobody --role publisher` adds one."
    expect(page.get_by_label("User name")).to_have_value("nobody")
    look(page, "admin-group")
    page.get_by_role("button", name="Remove vic from analysts").click()
    assert "Removed `vic` from `analysts`" in notice(page)
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and vera
    expect(rows.nth(1)).to_contain_text("vera")

    page.goto("/admin/groups/")
    expect(page.get_by_role("row", name="analysts")).to_contain_text("1")
    page.context.close()
    assert events(web, "group-") == [
        ("group-create", "analysts"),
        ("group-create", "temporary"),
        ("group-delete", "temporary"),
        ("group-member-add", "analysts vera"),
        ("group-member-add", "analysts vic"),
        ("group-member-remove", "analysts vic"),
    ]
    assert [line.split()[0] for line in web.cli("group", "members", "analysts").stdout.splitlines()[1:]] == ["vera"]

    # Not for anyone else: a publisher's GET and POST are refused, and nothing changes.
    page = sign_in(browser, web.url, "pat", PASSWORD)
    answer = page.goto("/admin/groups/")
    assert answer is not None and answer.status == 403
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    assert page.request.post("/admin/groups/", form={"csrf_token": token, "name": "by-pat"}).status == 403
    page.context.close()
    assert "by-pat" not in web.cli("group", "list").stdout


def test_a_publisher_shares_changes_and_removes_from_the_access_tab(web: Server, browser: Browser) -> None:
    assert not opens(web, "vera")
    page = sign_in(browser, web.url, "pat", PASSWORD)
    page.goto(ACCESS)
    expect(page.get_by_text("It is not shared with any user or group yet.")).to_be_visible()
    suggested = page.locator("#share-names option").evaluate_all(
        "(options) => options.map((o) => `${o.value} (${o.label})`)"
    )
    assert suggested == [
        "ada (user, admin)",
        "paul (user, publisher)",
        "vera (user, viewer)",
        "vic (user, viewer)",
        "analysts (group)",
    ]  # not pat: the owner needs no share

    page.get_by_label("User or group", exact=True).fill("paul")
    page.get_by_role("radio", name="Collaborator").check()
    assert submit(page, "Share") == 200
    assert notice(page) == "Shared with user paul."
    page.get_by_label("User or group", exact=True).fill("analysts")
    page.get_by_role("radio", name="Viewer").check()
    assert submit(page, "Share") == 200
    assert notice(page) == "Shared with group analysts."
    shared = page.get_by_role("table", name="Collaborators and viewers")
    expect(shared.get_by_role("row")).to_have_count(3)
    expect(page.get_by_label("Role of user paul")).to_have_value("owner")
    expect(page.get_by_label("Role of group analysts")).to_have_value("viewer")
    assert opens(web, "vera")  # through the group, at once
    look(page, "content-access-shared")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the tab scrolls sideways"
    screenshot(page, "content-access-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_label("Role of user paul").select_option(label="Viewer")
    assert submit(page, "Change the role of user paul") == 200
    assert notice(page) == "Changed the role of user paul."
    expect(page.get_by_label("Role of user paul")).to_have_value("viewer")

    page.get_by_role("button", name="Remove group analysts").click()
    expect(page.locator(".notice").first).to_have_text(
        "Removed group analysts: the content is no longer shared with them."
    )
    expect(shared.get_by_role("row")).to_have_count(2)
    assert not opens(web, "vera")

    page.get_by_label("All users, login required").check()
    assert submit(page, "Save access") == 200
    page.context.close()
    assert events(web, "permission-") == [
        ("permission-add", f"{GUID} user:paul owner"),
        ("permission-add", f"{GUID} group:analysts viewer"),
        ("permission-change", f"{GUID} user:paul viewer"),
        ("permission-remove", f"{GUID} group:analysts viewer"),
    ]

    # Made a collaborator again with the CLI, paul is shown the forms too.
    web.cli("content", "share", GUID, "--user", "paul", "--role", "owner")
    page = sign_in(browser, web.url, "paul", PASSWORD)
    page.goto(ACCESS)
    expect(page.get_by_role("button", name="Share", exact=True)).to_be_visible()
    page.context.close()


def test_a_viewer_sees_no_forms_and_cannot_post(web: Server, browser: Browser) -> None:
    web.cli("content", "share", GUID, "--user", "vic")
    before = events(web, "permission-")
    page = sign_in(browser, web.url, "vic", PASSWORD)
    page.goto(ACCESS)
    expect(page.get_by_role("heading", name="Access")).to_be_visible()
    expect(
        page.get_by_text("Its owner, pat, its collaborators and administrators choose who it is shared with.")
    ).to_be_visible()
    assert page.get_by_role("button").all_inner_texts() == ["Sign out"]
    expect(page.get_by_role("table")).to_have_count(0)  # who else it is shared with is the owner's to know
    look(page, "content-access-viewer")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    tried = page.request.post(f"{ACCESS}/share", form={"csrf_token": token, "principal": "vera", "role": "viewer"})
    assert tried.status == 403
    assert "its collaborators and administrators can see its access settings" in tried.text()
    page.context.close()
    assert events(web, "permission-") == before


def test_refused_input_says_why_and_changes_nothing(web: Server, browser: Browser) -> None:
    before = events(web, "permission-")
    page = sign_in(browser, web.url, "pat", PASSWORD)
    page.goto(ACCESS)
    rows = page.get_by_role("table", name="Collaborators and viewers").get_by_role("row").all_inner_texts()

    page.get_by_label("User or group", exact=True).fill("nobody")
    assert submit(page, "Share") == 404
    error = page.locator("#share-error")
    expect(error).to_have_text(
        "There is no user or group named nobody; give a name exactly as it is spelled on this server "
        "(an administrator can add users and groups)."
    )
    expect(page.get_by_label("User or group", exact=True)).to_have_value("nobody")
    expect(page.get_by_label("User or group", exact=True)).to_have_attribute("aria-invalid", "true")
    look(page, "content-access-error")

    page.get_by_label("User or group", exact=True).fill("vera")
    page.get_by_role("radio", name="Collaborator").check()
    assert submit(page, "Share") == 400
    expect(error).to_have_text(
        "User vera has role viewer, which cannot be a collaborator; share it as viewer, or an administrator can "
        "run packyard user set-role vera publisher first."
    )
    expect(page.get_by_role("radio", name="Collaborator")).to_be_checked()

    page.get_by_label("Role of user vic").select_option(label="Collaborator")
    assert submit(page, "Change the role of user vic") == 400
    expect(page.get_by_role("alert")).to_contain_text("User vic has role viewer, which cannot be a collaborator")

    page.get_by_label("User or group", exact=True).fill("pat")
    page.get_by_role("radio", name="Viewer").check()
    assert submit(page, "Share") == 409
    expect(error).to_have_text(f"User pat owns content {GUID}; an owner needs no permission.")
    assert page.get_by_role("table", name="Collaborators and viewers").get_by_role("row").all_inner_texts() == rows
    page.context.close()
    assert events(web, "permission-") == before


def test_the_admin_overview_says_what_changed(web: Server, browser: Browser) -> None:
    page = sign_in(browser, web.url, "ada", PASSWORD)
    page.goto("/admin/")
    recent = page.get_by_role("table", name="Recent changes").get_by_role("row")
    said = [" ".join(" ".join(row.split("\t")[1:]).split()) for row in recent.all_inner_texts()[1:]]
    text_rows = " / ".join(said)  # each row's change and detail, without its time
    for expected in (
        "Content shared “Sales report” (sales-report) with user vic, as viewer",
        "Content shared “Sales report” (sales-report) with user paul, as collaborator",
        "Access changed “Sales report” (sales-report) opens to every signed-in user",
        "Content unshared “Sales report” (sales-report) no longer shared with group analysts (was viewer)",
        "Sharing changed user paul is now viewer of “Sales report” (sales-report)",
        "Group member removed vic from group analysts",
        "Group member added vera to group analysts",
    ):
        assert expected in text_rows, text_rows
    for raw in (GUID, "permission-add", "group:analysts", "user:paul"):
        assert raw not in text_rows
    look(page, "admin-overview-sharing")
    page.context.close()
