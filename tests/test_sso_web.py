"""Single sign-on on the pages, against a real OpenID provider (tests/idp.py: panva's oidc-provider) and a real
server, in Chromium: the authorization code flow, the role and groups it maps, every refusal, and the page where a
signed-in user keeps their own API keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import check_accessibility, new_page, screenshot, sign_in, web_user
from tests.conftest import Server, _start, free_port, fresh_database
from tests.idp import CLIENT_ID, CLIENT_SECRET, USERS, IdP, identity_provider

PROVIDER = "Test IdP"
# nadia is at the provider, in the admin group, and a local user of the same name exists: she must not become her.
PEOPLE: dict[str, dict[str, Any]] = {
    **USERS,
    "nadia": {"password": "nadia-password-1", "email": "nadia@example.com", "groups": ["packyard-admins"]},
}
LOCAL_PASSWORD = "correct horse battery"
PENDING = "packyard_oidc"
SESSION = "packyard_session"


def oidc_env(issuer: str) -> dict[str, str]:
    return {
        "PACKYARD_OIDC_ISSUER": issuer,
        "PACKYARD_OIDC_CLIENT_ID": CLIENT_ID,
        "PACKYARD_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "PACKYARD_OIDC_DISPLAY_NAME": PROVIDER,
        "PACKYARD_OIDC_ADMIN_GROUPS": "packyard-admins",
        "PACKYARD_OIDC_PUBLISHER_GROUPS": "data-eng",
    }


@dataclass
class Sso:
    server: Server
    idp: IdP
    tmp: Path
    idp_port: int
    stack: ExitStack = field(default_factory=ExitStack)

    def restart_provider(self, people: dict[str, dict[str, Any]]) -> None:
        """The provider again, same issuer, with other users or groups (it reads them once, at start)."""
        self.stack.close()
        self.stack = ExitStack()
        callback = f"{self.server.url}/login/oidc/callback"
        self.idp = self.stack.enter_context(identity_provider(self.tmp, [callback], self.idp_port, people))


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    tmp = tmp_path_factory.mktemp("sso-web")
    port, idp_port = free_port(), free_port()
    stack = ExitStack()
    idp = stack.enter_context(
        identity_provider(tmp, [f"http://127.0.0.1:{port}/login/oidc/callback"], idp_port, PEOPLE)
    )
    state = Sso(_start(tmp / "data", "", oidc_env(idp.issuer), port), idp, tmp, idp_port, stack)
    try:
        web_user(state.server, "root", "admin", LOCAL_PASSWORD)
        web_user(state.server, "nadia", "viewer", LOCAL_PASSWORD)
        yield state
    finally:
        state.server.stop()
        state.stack.close()


def at_provider(page: Page, idp: IdP, name: str, password: str) -> None:
    """Type the user's name and password into the provider's own sign-in form."""
    page.wait_for_url(lambda url: url.startswith(idp.issuer))
    expect(page.get_by_role("heading", name="Test IdP")).to_be_visible()
    page.get_by_label("User", exact=True).fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in to the IdP").click()


def sso_sign_in(browser: Browser, sso: Sso, name: str, next: str = "/") -> Page:
    """A fresh browser signed in through the provider, on `next`; close with `page.context.close()`."""
    page = new_page(browser, sso.server.url)
    page.goto(f"/login?next={next}")
    page.get_by_role("link", name=f"Sign in with {PROVIDER}").click()
    at_provider(page, sso.idp, name, PEOPLE[name]["password"])
    page.wait_for_url(f"{sso.server.url}{next}")
    return page


def signed_in_as(page: Page) -> str:
    """The header's "name role", or "" when nobody is signed in."""
    who = page.locator(".site-header .who")
    return " ".join(who.inner_text().split()) if who.count() else ""


def new_key(page: Page, name: str) -> str:
    """Create a key on the user's keys page; the key, shown once."""
    page.goto("/profile/keys")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("main .notice")).to_contain_text(f"Created key `{name}`")
    return page.locator("#new-key").inner_text().strip()


def api_user(server: Server, key: str) -> httpx.Response:
    return httpx.get(f"{server.url}/__api__/v1/user", headers={"Authorization": f"Key {key}"}, timeout=30)


def first_column(output: str) -> list[str]:
    """The first column of a CLI table, its heading left out."""
    return re.findall(r"^\s*(\S+)", output, re.M)[1:]


def members(server: Server, group: str) -> set[str]:
    """The group's members as `packyard group members` lists them; none when there is no such group."""
    result = server.cli("group", "members", group, check=False)
    return set(first_column(result.stdout)) if result.returncode == 0 else set()


def cookies(page: Page) -> dict[str, dict[str, Any]]:
    return {c["name"]: dict(c) for c in page.context.cookies()}


def test_login_page_offers_the_provider_and_the_password(sso: Sso, browser: Browser) -> None:
    page = new_page(browser, sso.server.url)
    page.goto("/login?next=/repos/")
    link = page.get_by_role("link", name=f"Sign in with {PROVIDER}")
    assert link.get_attribute("href") == "/login/oidc?next=/repos/"
    expect(page.get_by_label("User name")).to_be_visible()
    screenshot(page, "login-sso")
    check_accessibility(page)
    page.context.close()


@pytest.mark.parametrize(
    ("name", "role", "connect_role", "groups"),
    [
        ("ines", "admin", "administrator", {"analysts", "packyard-admins"}),
        ("omar", "publisher", "publisher", {"analysts", "data-eng"}),
        ("rita", "viewer", "viewer", {"sales"}),
    ],
)
def test_people_sign_in_with_their_mapped_role_and_groups(
    sso: Sso, browser: Browser, name: str, role: str, connect_role: str, groups: set[str]
) -> None:
    page = sso_sign_in(browser, sso, name, next="/repos/")
    assert signed_in_as(page) == f"{name} {role}"
    assert SESSION in cookies(page) and PENDING not in cookies(page)
    key = new_key(page, "laptop")
    expect(page.locator("main")).to_contain_text(f"role {role}, in the groups {', '.join(sorted(groups))}")
    answer = api_user(sso.server, key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == name and answer.json()["user_role"] == connect_role
    assert answer.json()["email"] == PEOPLE[name]["email"]
    for group in groups:
        assert name in members(sso.server, group), group
    page.context.close()

    # The next sign-in finds the same user (by issuer and subject), it does not make another.
    page = sso_sign_in(browser, sso, name)
    assert signed_in_as(page) == f"{name} {role}"
    assert first_column(sso.server.cli("user", "list").stdout).count(name) == 1
    page.context.close()


def test_break_glass_password_still_signs_in(sso: Sso, browser: Browser) -> None:
    page = sign_in(browser, sso.server.url, "root", LOCAL_PASSWORD)
    assert signed_in_as(page) == "root admin"
    page.context.close()


def test_a_wrong_password_at_the_provider_stays_there(sso: Sso, browser: Browser) -> None:
    page = new_page(browser, sso.server.url)
    page.goto("/login")
    page.get_by_role("link", name=f"Sign in with {PROVIDER}").click()
    at_provider(page, sso.idp, "omar", "not omar's password")
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    assert page.url.startswith(sso.idp.issuer)
    assert SESSION not in cookies(page)
    page.context.close()


def held_callback(page: Page, sso: Sso, name: str) -> str:
    """Sign in at the provider but stop before the browser reaches the callback; the callback's URL. The form is
    posted and its redirects followed by the browser context's own request client (same cookies), because
    Playwright's routes do not see the requests of a redirect chain."""
    page.goto("/login?next=/connect/")
    page.get_by_role("link", name=f"Sign in with {PROVIDER}").click()
    page.wait_for_url(lambda url: url.startswith(sso.idp.issuer))
    action = urljoin(page.url, page.locator("form").get_attribute("action") or "")
    form = {"login": name, "password": PEOPLE[name]["password"]}
    answer = page.context.request.post(action, form=form, max_redirects=0)
    while answer.status in (302, 303):
        location = urljoin(answer.url, answer.headers["location"])
        if location.startswith(f"{sso.server.url}/login/oidc/callback"):
            return location
        answer = page.context.request.get(location, max_redirects=0)
    raise AssertionError(f"the provider did not send the browser back: {answer.status} {answer.text()}")


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def refused(page: Page, url: str, pending: dict[str, Any] | None, message: str, status: int = 400) -> None:
    """The callback at `url`, with the pending sign-in cookie put back first: the login page saying `message`."""
    if pending is not None:
        page.context.add_cookies([pending])  # type: ignore[list-item]
    answer = page.goto(url)
    assert answer is not None and answer.status == status, (answer and answer.status, page.content())
    assert urlsplit(page.url).path == "/login/oidc/callback"
    expect(page.get_by_role("alert")).to_contain_text(message)
    expect(page.get_by_label("User name")).to_be_visible()  # the login page, password form and all
    assert SESSION not in cookies(page) and PENDING not in cookies(page)
    assert signed_in_as(page) == ""


def test_the_callback_refuses_what_is_not_this_browsers_sign_in(sso: Sso, browser: Browser) -> None:
    page = new_page(browser, sso.server.url)
    url = held_callback(page, sso, "rita")
    pending = cookies(page)[PENDING]
    assert pending["httpOnly"] and pending["path"] == "/login/oidc"

    refused(page, with_query(url, state="not-the-state"), pending, "does not belong to this browser's sign-in")
    refused(page, with_query(url, code=None), pending, "has no authorization code")
    refused(page, url, None, "This browser has no sign-in in progress")
    refused(page, url, {**pending, "value": pending["value"][:-4] + "AAAA"}, "is not one this server made")
    error = with_query(url, code=None, error="access_denied", error_description="the user said no")
    refused(page, error, pending, "The provider refused the sign-in (access_denied: the user said no)")

    # The real answer, once: signed in, and sent on to `next`.
    page.context.add_cookies([pending])  # type: ignore[list-item]
    page.goto(url)
    assert urlsplit(page.url).path == "/connect/"
    assert signed_in_as(page) == "rita viewer"
    screenshot(page, "sso-signed-in")

    # The same answer again, in another browser that even has the pending cookie: the code is spent.
    other = new_page(browser, sso.server.url)
    refused(other, url, pending, "The provider refused the authorization code (invalid_grant")
    other.context.close()
    page.context.close()


def test_provider_user_does_not_take_over_a_local_user_of_that_name(sso: Sso, browser: Browser) -> None:
    page = new_page(browser, sso.server.url)
    page.goto("/login")
    page.get_by_role("link", name=f"Sign in with {PROVIDER}").click()
    at_provider(page, sso.idp, "nadia", PEOPLE["nadia"]["password"])
    page.wait_for_url(lambda url: url.startswith(sso.server.url))
    expect(page.get_by_role("alert")).to_contain_text("A local user `nadia` already exists")
    assert SESSION not in cookies(page) and signed_in_as(page) == ""
    page.context.close()
    # The local nadia is as she was: a viewer, and her password works.
    local = sign_in(browser, sso.server.url, "nadia", LOCAL_PASSWORD)
    assert signed_in_as(local) == "nadia viewer"
    local.context.close()
    assert "nadia" not in members(sso.server, "packyard-admins")


def test_a_locked_user_is_refused_at_sign_in(sso: Sso, browser: Browser) -> None:
    sso_sign_in(browser, sso, "rita").context.close()  # rita exists from her first sign-in
    sso.server.cli("user", "lock", "rita")
    try:
        page = new_page(browser, sso.server.url)
        page.goto("/login")
        page.get_by_role("link", name=f"Sign in with {PROVIDER}").click()
        at_provider(page, sso.idp, "rita", PEOPLE["rita"]["password"])
        page.wait_for_url(lambda url: url.startswith(sso.server.url))
        expect(page.get_by_role("alert")).to_have_text(
            "User `rita` is locked; an administrator can unlock the account."
        )
        assert SESSION not in cookies(page)
        page.context.close()
    finally:
        sso.server.cli("user", "unlock", "rita")


def test_users_keep_their_own_api_keys(sso: Sso, browser: Browser) -> None:
    page = sso_sign_in(browser, sso, "ines")
    page.get_by_role("link", name="Your API keys").click()
    expect(page.get_by_role("heading", name="Your API keys", level=1)).to_be_visible()
    key = new_key(page, "deploys")
    expect(page.locator("#new-key-rsconnect")).to_have_text(
        f"rsconnect add --server {sso.server.url} --name packyard --api-key {key}"
    )
    screenshot(page, "profile-keys")
    check_accessibility(page)
    assert api_user(sso.server, key).json()["username"] == "ines"
    page.goto("/profile/keys")  # shown once: not again, but listed by name and prefix, with when it was last used
    assert key not in page.content()
    row = page.get_by_role("row", name=re.compile(r"^deploys "))
    expect(row).to_contain_text(key[:6] + "…")
    expect(row).not_to_contain_text("never")
    key_id = re.search(r"/profile/keys/(\d+)/revoke", row.inner_html())
    assert key_id

    # Another user cannot revoke it, by any form they can post.
    other = sso_sign_in(browser, sso, "omar")
    other.goto("/profile/keys")
    token = other.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = other.context.request.post(f"/profile/keys/{key_id[1]}/revoke", form={"csrf_token": token or ""})
    assert answer.status == 404 and "User `omar` has no API key with id" in answer.text()
    answer = other.context.request.post(f"/profile/keys/{key_id[1]}/revoke", form={})
    assert answer.status == 403  # no CSRF token
    other.context.close()
    assert api_user(sso.server, key).status_code == 200

    # Its owner revokes it, and the API refuses it at once.
    page.get_by_role("button", name="Revoke key deploys").click()
    expect(page.locator("main .notice")).to_contain_text("Revoked key `deploys`")
    assert api_user(sso.server, key).status_code == 401
    expect(page.get_by_role("row", name=re.compile(r"^deploys "))).to_have_count(0)

    # A nameless key is refused with the form kept; an anonymous visitor is sent to sign in.
    page.get_by_label("Name").fill("   ")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Give the key a name that says what it is for, e.g. `laptop` or `ci`."
    )
    page.context.close()
    anonymous = httpx.get(f"{sso.server.url}/profile/keys", timeout=30)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/profile/keys"


def test_role_and_groups_follow_the_provider_at_the_next_sign_in(sso: Sso, browser: Browser) -> None:
    page = sso_sign_in(browser, sso, "omar")
    assert signed_in_as(page) == "omar publisher"
    page.context.close()
    # An administrator's own group keeps omar whatever the provider says.
    sso.server.cli("group", "create", "reviewers")
    sso.server.cli("group", "add", "reviewers", "omar")

    moved = {**PEOPLE, "omar": {**PEOPLE["omar"], "groups": ["analysts", "ml"]}}
    sso.restart_provider(moved)
    try:
        page = sso_sign_in(browser, sso, "omar")
        assert signed_in_as(page) == "omar viewer"  # out of data-eng: no longer a publisher
        page.context.close()
        assert "omar" not in members(sso.server, "data-eng")
        assert "omar" in members(sso.server, "ml") and "omar" in members(sso.server, "analysts")
        assert "omar" in members(sso.server, "reviewers")
    finally:
        sso.restart_provider(PEOPLE)


def test_sign_in_on_postgresql(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> None:
    tmp = tmp_path_factory.mktemp("sso-web-pg")
    port = free_port()
    with (
        fresh_database("postgresql") as url,
        identity_provider(tmp, [f"http://127.0.0.1:{port}/login/oidc/callback"], users=PEOPLE) as idp,
    ):
        server = _start(tmp / "data", url, oidc_env(idp.issuer), port)
        try:
            state = Sso(server, idp, tmp, 0)
            page = sso_sign_in(browser, state, "ines", next="/admin/")
            assert signed_in_as(page) == "ines admin"
            key = new_key(page, "laptop")
            assert api_user(server, key).json()["user_role"] == "administrator"
            assert members(server, "packyard-admins") == {"ines"}
            page.context.close()
        finally:
            server.stop()
