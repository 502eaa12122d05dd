"""The admin pages in a real Chromium: users, keys, tokens used by real twine and pip, block rules, environments."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, func, select, text

from packyard.config import load_settings
from packyard.db import Database
from packyard.publishing.environments.builder import Environments
from packyard.publishing.environments.interpreters import find_interpreters
from packyard.publishing.environments.plan import plan_install
from packyard.publishing.models import Bundle, Content, PythonEnvironment, User
from tests.browser import check_accessibility, new_page, screenshot, sign_in, web_user
from tests.conftest import BIN, Server, _start, fresh_database, run, sandbox
from tests.dists import make_wheel

PASSWORD = "correct horse battery"
ADMIN_PAGES = ["/admin/", "/admin/users/", "/admin/keys/", "/admin/tokens/", "/admin/environments/"]
ADMIN_PAGES += ["/admin/sources/", "/admin/policy/", "/admin/groups/"]
GUID = "6f1c1b8e-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fresh_database("sqlite") as url:
        server = _start(tmp_path_factory.mktemp("packyard-admin"), url)
        web_user(server, "ada", "admin", PASSWORD)
        web_user(server, "pat", "publisher", PASSWORD)
        web_user(server, "vic", "viewer", PASSWORD)
        server.cli("repo", "create", "--name", "private", "--authenticated")
        server.cli("repo", "subscribe", "--repo", "private", "--source", "local-python-src")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def admin(web: Server, browser: Browser) -> Iterator[Page]:
    page = sign_in(browser, web.url, "ada", PASSWORD)
    yield page
    page.context.close()


def events(server: Server, prefix: str) -> list[tuple[str, str]]:
    """The change log's events of one kind family, as the CLI leaves them too."""
    engine = create_engine(server.sql_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT kind, detail FROM events WHERE kind LIKE :p ORDER BY id")
            return [(kind, detail) for kind, detail in conn.execute(query, {"p": prefix + "%"})]
    finally:
        engine.dispose()


def submit(page: Page, button: str) -> int:
    """Click a form's submit button; the status of the page the POST answered with."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    return answer.value.status


def notice(page: Page) -> str:
    return page.locator(".notice").first.inner_text()


def look(page: Page, name: str) -> None:
    screenshot(page, name)
    check_accessibility(page)


def shown(page: Page, block: str) -> str:
    """The text of a copy block, as the Copy button would copy it."""
    return page.locator(f"#{block}").inner_text().strip()


def test_user_and_token_made_on_the_pages_work_with_real_clients(
    web: Server, admin: Page, browser: Browser, client_env: dict[str, str], tmp_path: Path
) -> None:
    admin.goto("/admin/")
    expect(admin.get_by_role("heading", name="Administration")).to_be_visible()
    look(admin, "admin-overview")

    admin.goto("/admin/users/")
    admin.get_by_label("User name").fill("bob")
    admin.get_by_label("Role", exact=True).select_option("publisher")
    admin.get_by_label("Initial password").fill("bobs password")
    assert submit(admin, "Create user") == 200
    assert "Created publisher `bob`" in notice(admin)
    expect(admin.get_by_role("row", name="bob")).to_contain_text("active")
    look(admin, "admin-users")
    sign_in(browser, web.url, "bob", "bobs password").context.close()  # the initial password works

    admin.get_by_label("Role of bob").select_option("viewer")
    assert submit(admin, "Change the role of bob") == 200
    admin.get_by_role("button", name="Lock bob").click()
    expect(admin.get_by_role("row", name="bob")).to_contain_text("locked")
    admin.get_by_role("button", name="Unlock bob").click()
    expect(admin.get_by_role("row", name="bob")).not_to_contain_text("locked")
    assert [e for e in events(web, "user-") if e[1].startswith("bob")] == [
        ("user-create", "bob publisher"),
        ("user-password", "bob"),
        ("user-role", "bob viewer"),
        ("user-lock", "bob"),
        ("user-unlock", "bob"),
    ]

    # A token for uploads and for reading the authenticated repository, as a person fills the form in.
    admin.goto("/admin/tokens/")
    admin.get_by_label("Description").fill("ci upload")
    admin.get_by_label("sources:write: upload to the sources chosen below").check()
    admin.get_by_label("repos:read: install from the authenticated repositories chosen below").check()
    admin.get_by_label("local-python-src").check()
    admin.get_by_label("private").check()
    admin.get_by_label("Last day it works").fill(f"{date.today() + timedelta(days=30):%Y-%m-%d}")
    assert submit(admin, "Create token") == 200
    assert "Created token `ci upload`" in notice(admin)
    token = shown(admin, "new-token")
    twine_line = shown(admin, "hint-twine")
    pip_line = shown(admin, "hint-pip")
    assert token in twine_line and token in pip_line
    look(admin, "admin-tokens")

    dist = tmp_path / "dist"
    old = make_wheel(dist, "admin-demo", "1.0")
    new = make_wheel(dist, "admin-demo", "1.1")
    twine = shlex.split(twine_line)
    assert twine[0] == "twine" and twine[-1] == "dist/*"
    run([str(BIN / "twine"), *twine[1:-1], "--non-interactive", str(old), str(new)], client_env)

    # Blocking 1.1 in `private` on the page: its simple page drops 1.1 and pip picks 1.0 there.
    admin.goto("/admin/policy/")
    admin.get_by_label("Project").fill("Admin_Demo")
    admin.get_by_label("Versions").fill("==1.1")
    admin.get_by_label("Repository").select_option("private")
    admin.get_by_label("Reason").fill("breaks the build")
    assert submit(admin, "Add rule") == 200
    assert "`admin-demo` versions `==1.1` is blocked in repository `private`" in notice(admin)
    look(admin, "admin-policy")
    auth = ("__token__", token)
    page = httpx.get(f"{web.url}/private/latest/simple/admin-demo/", auth=auth).text
    assert "admin_demo-1.0-py3-none-any.whl" in page and "admin_demo-1.1" not in page
    assert "admin_demo-1.1" in httpx.get(f"{web.url}/pypi/latest/simple/admin-demo/").text
    pip = shlex.split(pip_line)
    index = pip[pip.index("--index-url") + 1]
    downloads = tmp_path / "downloads"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "-d", str(downloads)]
    run([*command, "--index-url", index, "admin-demo"], client_env)
    assert [p.name for p in downloads.iterdir()] == ["admin_demo-1.0-py3-none-any.whl"]

    # Revoked on the page: the very next upload and index read are refused.
    admin.goto("/admin/tokens/")
    admin.get_by_role("button", name="Revoke token ci upload").click()
    assert "Revoked token `ci upload`" in notice(admin)
    expect(admin.get_by_role("row", name="ci upload")).to_contain_text("revoked")
    newer = make_wheel(tmp_path / "later", "admin-demo", "1.2")
    refused = run([str(BIN / "twine"), *twine[1:-1], "--non-interactive", str(newer)], client_env, check=False)
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert httpx.get(f"{web.url}/private/latest/simple/admin-demo/", auth=auth).status_code == 401
    assert [kind for kind, _ in events(web, "token-")] == ["token-create", "token-revoke"]

    admin.goto("/admin/policy/")
    admin.get_by_role("button", name="Remove rule 1 (admin-demo)").click()
    assert "Removed rule 1" in notice(admin)
    assert "admin_demo-1.1" in httpx.get(f"{web.url}/private/latest/simple/admin-demo/", auth=web_auth(web)).text


def web_auth(server: Server) -> tuple[str, str]:
    return ("__token__", server.token("--scope", "repos:read", "--repos", "private"))


def test_api_keys_are_shown_once_and_revoked(web: Server, admin: Page) -> None:
    admin.goto("/admin/keys/")
    admin.get_by_label("User it acts as").select_option("pat")
    admin.get_by_label("Name", exact=True).fill("laptop")
    assert submit(admin, "Create key") == 200
    key = shown(admin, "new-key")
    assert f"--api-key {key}" in shown(admin, "new-key-rsconnect")
    me = httpx.get(f"{web.url}/__api__/v1/user", headers={"Authorization": f"Key {key}"})
    assert me.status_code == 200 and me.json()["username"] == "pat"
    look(admin, "admin-keys")

    admin.goto("/admin/keys/?user=pat")
    expect(admin.get_by_role("row", name="laptop")).to_contain_text(key[:6] + "…")
    assert key not in admin.content()  # only its first characters from now on
    admin.get_by_role("button", name="Revoke key laptop of pat").click()
    assert "Revoked key `laptop`" in notice(admin)
    assert httpx.get(f"{web.url}/__api__/v1/user", headers={"Authorization": f"Key {key}"}).status_code == 401
    assert [kind for kind, _ in events(web, "key-")] == ["key-create", "key-revoke"]
    admin.goto("/admin/")
    latest = admin.get_by_role("table", name="Recent changes").get_by_role("row").nth(1)
    expect(latest).to_contain_text("API key revoked")
    expect(latest).to_contain_text("key “laptop” of pat")


def test_environment_cache_lists_and_removes_unused(web: Server, admin: Page) -> None:
    dist = web.data_dir / "env-dists"
    for name in ("env-one", "env-two"):
        make_wheel(dist, name, "1.0")
    web.twine(*sorted(dist.iterdir()))
    settings = load_settings(web.data_dir)
    db = Database(web.sql_url)
    try:
        envs = Environments(settings, db, sandbox())
        python = find_interpreters([getattr(sys, "_base_executable", "") or sys.executable])[0]
        built = {}
        for name in ("env-one", "env-two"):
            plan = plan_install(f"{name}\n", web.data_dir, [], settings.python, python)
            build = envs.prepare(python, plan, managed=True, log=lambda line: None)
            # Playwright's sync API keeps an event loop in this thread; the build gets its own.
            with ThreadPoolExecutor(1) as pool:
                built[name] = pool.submit(asyncio.run, build).result()
        used, unused = built["env-one"].key, built["env-two"].key
        with db.session() as session:  # content whose active version runs on env-one
            owner = session.scalar(select(User.id).where(User.username == "pat"))
            content = Content(guid=GUID, name="sales-api", owner_id=owner)
            session.add(content)
            session.flush()
            bundle = Bundle(content_id=content.id, sha256="0" * 64, size=1, environment_key=used)
            session.add(bundle)
            session.flush()
            content.bundle_id = bundle.id
    finally:
        db.dispose()

    admin.goto("/admin/environments/")
    in_use = admin.get_by_role("row", name=used[:12])
    expect(in_use.get_by_role("link", name="sales-api")).to_have_attribute("href", f"/connect/apps/{GUID}/")
    expect(in_use).to_contain_text("in use")
    look(admin, "admin-environments")
    admin.get_by_role("button", name=f"Remove environment {unused[:12]}").click()
    assert f"Removed environment {unused[:12]}" in notice(admin)
    assert not (web.data_dir / "environments" / unused).exists()

    # A forged removal of the one in use is refused with `packyard env rm`'s rule, and nothing is removed.
    token = admin.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = admin.request.post(f"/admin/environments/{used}/remove", form={"csrf_token": token or ""})
    assert answer.status == 400 and "is in use by content `sales-api`" in answer.text()
    assert (web.data_dir / "environments" / used).is_dir()
    db = Database(web.sql_url)
    try:
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(PythonEnvironment)) == 1
    finally:
        db.dispose()
    assert events(web, "env-") == [("env-remove", unused)]


def test_sources_page(web: Server, admin: Page) -> None:
    admin.goto("/admin/sources/")
    row = admin.get_by_role("row", name="local-python-src")
    expect(row).to_contain_text("local-python")
    expect(row.get_by_role("link", name="private")).to_be_visible()
    expect(row.get_by_role("link", name="pypi")).to_be_visible()
    look(admin, "admin-sources")


def test_bad_input_shows_its_error_and_stores_nothing(web: Server, admin: Page) -> None:
    def count(table: str) -> int:
        engine = create_engine(web.sql_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        finally:
            engine.dispose()

    admin.goto("/admin/users/")
    users = count("users")
    admin.get_by_label("User name").fill("pat")
    admin.get_by_label("Initial password").fill("another password")
    assert submit(admin, "Create user") == 409
    assert "User `pat` already exists" in notice(admin)
    assert admin.get_by_label("User name").input_value() == "pat"  # the form comes back as sent
    admin.get_by_label("User name").fill("shorty")
    admin.get_by_label("Initial password").fill("short")
    assert submit(admin, "Create user") == 400
    assert "The password has 5 characters; use at least 8." in notice(admin)
    assert count("users") == users

    tokens = count("tokens")
    admin.goto("/admin/tokens/")
    admin.get_by_label("Description").fill("bad scope")
    admin.get_by_label("admin: everything, on every source and repository").evaluate("box => box.value = 'root'")
    admin.get_by_label("admin: everything, on every source and repository").check()
    assert submit(admin, "Create token") == 400
    assert "Scope 'root' is not known" in notice(admin)
    admin.get_by_label("Description").fill("past expiry")
    admin.get_by_label("sources:write: upload to the sources chosen below").check()
    admin.get_by_label("local-python-src").check()
    admin.get_by_label("Last day it works").fill("2020-01-31")
    assert submit(admin, "Create token") == 400
    assert "Expiry 2020-01-31 is in the past" in notice(admin)
    assert admin.get_by_label("local-python-src").is_checked()
    assert count("tokens") == tokens

    rules = count("block_rules")
    admin.goto("/admin/policy/")
    admin.get_by_label("Project").fill("admin-demo")
    admin.get_by_label("Versions").fill("=>1.0")
    admin.get_by_label("Reason").fill("typo")
    assert submit(admin, "Add rule") == 400
    assert "Version specifier '=>1.0' is not valid" in notice(admin)
    assert admin.get_by_label("Versions").input_value() == "=>1.0"
    look(admin, "admin-policy-error")
    assert count("block_rules") == rules


@pytest.mark.parametrize("role", ["publisher", "viewer"])
def test_non_admins_get_403_everywhere(web: Server, browser: Browser, role: str) -> None:
    page = sign_in(browser, web.url, {"publisher": "pat", "viewer": "vic"}[role], PASSWORD)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")).to_have_count(0)
    for path in ADMIN_PAGES:
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path
        expect(page.get_by_role("heading", name="Forbidden")).to_be_visible()
    check_accessibility(page)
    # A POST with the user's own valid CSRF token is refused too, and changes nothing.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    form = {"csrf_token": token, "username": f"by-{role}", "role": "admin", "password": "x" * 12}
    assert page.request.post("/admin/users/", form=form).status == 403
    assert page.request.post("/admin/users/ada/lock", form={"csrf_token": token}).status == 403
    page.context.close()
    assert f"by-{role}" not in web.cli("user", "list").stdout


def test_anonymous_visitors_are_sent_to_sign_in(web: Server, browser: Browser) -> None:
    page = new_page(browser, web.url)
    page.goto("/admin/users/")
    assert page.url == f"{web.url}/login?next=/admin/users/"
    page.context.close()


def test_pages_fit_a_phone(web: Server, admin: Page) -> None:
    admin.set_viewport_size({"width": 390, "height": 844})
    try:
        for path in ADMIN_PAGES:
            admin.goto(path)
            overflow = admin.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        screenshot(admin, "admin-policy-phone")
    finally:
        admin.set_viewport_size({"width": 1280, "height": 800})
