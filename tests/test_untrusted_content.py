"""Every publisher and every app is a possible attacker (issue 13), against a real server with the real rsconnect:
Packyard's credentials never reach an app, and an app cannot set Packyard's cookies; only the active bundle and
the current draft are served, and a deleted bundle is gone; a publisher demoted to viewer changes nothing, and
locked content takes no deploys or changes."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser
from websockets.sync.client import connect

from packyard.publishing.proxy.access import CONTENT_TTL
from tests.browser import new_page, sign_in, web_user
from tests.publishing import Publishing, copy_app, manifest, publishing_server, setup_publishing, tarball

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
        # What Connect's proxy tells content about the viewer, forged: apps written for Connect trust it.
        "RStudio-Connect-Credentials": '{"user": "admin", "groups": ["admins"]}',
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
    # Who the viewer is, as the proxy found it (the key's user), not as the client claimed.
    assert seen["rstudio-connect-credentials"] == ['{"user":"alice","groups":[]}']
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
    assert seen["rstudio-connect-credentials"] == ['{"user":"alice","groups":[]}']
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


# -- viewing in a browser: the session authorizes content, and the app learns who is viewing -------------------


@pytest.fixture(scope="module")
def members_only(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A second echo app, for signed-in users only."""
    app = copy_app("echo-app", tmp_path_factory.mktemp("members"))
    pub.deploy("fastapi", app)
    guid = pub.record(app)["app_guid"]
    assert pub.api("PATCH", f"/v1/content/{guid}", json={"access_type": "logged_in"}).status_code == 200
    time.sleep(CONTENT_TTL)
    return str(guid)


def test_a_session_opens_logged_in_content_and_the_app_learns_who_views(pub: Publishing, members_only: str) -> None:
    path = f"/content/{members_only}/headers"
    with httpx.Client(base_url=pub.server.url, timeout=60) as anonymous:
        page = anonymous.get(path, params={"tab": "2"}, headers={"Accept": "text/html,*/*"})
        assert page.status_code == 303
        assert page.headers["location"] == f"/login?next=/content/{members_only}/headers%3Ftab%3D2"
        api = anonymous.get(path, headers={"Accept": "application/json"})
        assert api.status_code == 401
        assert "visible to signed-in users; send `Authorization: Key <key>`, or sign in at /login" in api.text
    with signed_in(pub, "vera") as client:
        seen = client.get(path).json()["headers"]
        assert seen["rstudio-connect-credentials"] == ['{"user":"vera","groups":[]}']
        assert "cookie" not in seen  # the session that let her in stayed behind
        url = pub.server.url.replace("http://", "ws://") + f"/content/{members_only}/socket"
        cookie = f"packyard_session={client.cookies['packyard_session']}"
        with connect(url, origin=pub.server.url, additional_headers={"Cookie": cookie}, open_timeout=30) as ws:
            handshake = json.loads(ws.recv(timeout=30))["headers"]
        assert handshake["rstudio-connect-credentials"] == ['{"user":"vera","groups":[]}']


def test_content_shared_with_nobody_refuses_a_signed_in_viewer(pub: Publishing, echo: str) -> None:
    private = pub.api("PATCH", f"/v1/content/{echo}", json={"access_type": "acl"})
    assert private.status_code == 200
    time.sleep(CONTENT_TTL)
    try:
        with signed_in(pub, "vera") as client:
            answer = client.get(f"/content/{echo}/headers", headers={"Accept": "text/html"})
        assert answer.status_code == 403
        assert f"User `vera` may not see content {echo}; ask its owner to share it with you." in answer.text
    finally:
        pub.api("PATCH", f"/v1/content/{echo}", json={"access_type": "all"})
        time.sleep(CONTENT_TTL)


def test_an_anonymous_browser_signs_in_and_comes_back(pub: Publishing, members_only: str, browser: Browser) -> None:
    page = new_page(browser, pub.server.url)
    try:
        page.goto(f"/content/{members_only}/headers")
        assert "/login?next=" in page.url
        page.get_by_label("User name").fill("vera")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"**/content/{members_only}/headers")
        seen = json.loads(page.locator("body").inner_text())["headers"]
        assert seen["rstudio-connect-credentials"] == ['{"user":"vera","groups":[]}']
    finally:
        page.context.close()


# -- which bundles the proxy serves -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The static test site, deployed by alice: version 1."""
    app = copy_app("html-site", tmp_path_factory.mktemp("apps"))
    result = pub.deploy("html", app)
    assert "Deployment completed successfully." in result.stdout + result.stderr
    return app, pub.record(app)["app_guid"]


def deploy_version(pub: Publishing, app: Path, number: int, *args: str) -> int:
    """Deploy the static site as version `number`; the id of the bundle that made."""
    index = app / "index.html"
    index.write_text(re.sub(r"version \d+", f"version {number}", index.read_text()))
    pub.deploy("html", app, *args)
    return int(pub.api("GET", f"/v1/content/{pub.record(app)['app_guid']}/bundles").json()[0]["id"])


def active_bundle(pub: Publishing, guid: str) -> int:
    return int(pub.api("GET", f"/v1/content/{guid}").json()["bundle_id"])


def test_a_superseded_bundle_is_not_served(pub: Publishing, site: tuple[Path, str]) -> None:
    app, guid = site
    first = active_bundle(pub, guid)
    assert "version 1" in pub.get(f"/content/{guid}/_bundle{first}/").text  # the active bundle, by its own URL
    second = deploy_version(pub, app, 2)  # rsconnect verifies it as a draft, then activates it
    assert active_bundle(pub, guid) == second
    assert "version 2" in pub.get(f"/content/{guid}/_bundle{second}/").text
    for path in ("", "about.html"):
        old = pub.get(f"/content/{guid}/_bundle{first}/{path}")
        assert old.status_code == 404 and old.text == (
            f"Bundle {first} of content `{guid}` is neither its active bundle nor its current draft, so "
            f"`/content/{guid}/_bundle{first}/` serves nothing; its owner can deploy it again as a draft "
            f'(`POST /__api__/v1/content/{guid}/deploy` with `{{"bundle_id": "{first}", "activate": false}}`) '
            "or roll back to it.\n"
        )
    # A draft is served at its URL until another draft or its activation supersedes it.
    draft = deploy_version(pub, app, 3, "--draft")
    assert "version 3" in pub.get(f"/content/{guid}/_bundle{draft}/").text
    assert "version 2" in pub.get(f"/content/{guid}/").text
    newer = deploy_version(pub, app, 4, "--draft")
    assert pub.get(f"/content/{guid}/_bundle{draft}/").status_code == 404
    assert "version 4" in pub.get(f"/content/{guid}/_bundle{newer}/").text
    # Rolling back to a superseded bundle still works: its files are kept for that.
    task = pub.api("POST", f"/v1/content/{guid}/deploy", json={"bundle_id": str(first)}).json()
    assert pub.wait_task(task["task_id"])["code"] == 0
    assert "version 1" in pub.get(f"/content/{guid}/").text


def test_a_deleted_bundle_is_gone_from_the_proxy_and_the_disk(pub: Publishing, site: tuple[Path, str]) -> None:
    app, guid = site
    active = active_bundle(pub, guid)
    draft = deploy_version(pub, app, 5, "--draft")
    bundles = [int(b["id"]) for b in pub.api("GET", f"/v1/content/{guid}/bundles").json()]
    superseded = min(set(bundles) - {active, draft})
    folders = pub.server.data_dir / "apps" / guid
    assert (folders / f"bundle-{draft}").is_dir() and (folders / f"bundle-{superseded}").is_dir()
    assert "version 5" in pub.get(f"/content/{guid}/_bundle{draft}/").text
    for number in (draft, superseded):
        deleted = pub.api("DELETE", f"/v1/content/{guid}/bundles/{number}")
        assert deleted.json() == {"id": str(number), "deleted": True}
        for path in ("", "css/site.css"):
            gone = pub.get(f"/content/{guid}/_bundle{number}/{path}")
            assert gone.status_code == 404 and gone.text == (
                f"Content `{guid}` has no bundle {number}: it was deleted, or never uploaded. "
                f"`/content/{guid}/` serves its active bundle.\n"
            )
        assert not (folders / f"bundle-{number}").exists()
    assert pub.get(f"/content/{guid}/").status_code == 200 and (folders / f"bundle-{active}").is_dir()
    kept = pub.api("DELETE", f"/v1/content/{guid}/bundles/{active}")
    assert kept.status_code == 400 and kept.json()["code"] == 75


def test_a_deleted_draft_of_an_app_stops_its_process(pub: Publishing, echo: str, tmp_path: Path) -> None:
    app = copy_app("echo-app", tmp_path)
    pub.deploy("fastapi", app, "--app-id", echo, "--draft")
    draft = pub.api("GET", f"/v1/content/{echo}/bundles").json()[0]["id"]
    assert pub.get(f"/content/{echo}/_bundle{draft}/headers").status_code == 200
    [pid] = [job["pid"] for job in pub.api("GET", f"/v1/content/{echo}/jobs").json() if job["bundle_id"] == draft]
    assert pub.api("DELETE", f"/v1/content/{echo}/bundles/{draft}").status_code == 200
    gone = pub.get(f"/content/{echo}/_bundle{draft}/headers")
    assert gone.status_code == 404 and f"has no bundle {draft}: it was deleted" in gone.text
    assert all(job["bundle_id"] != draft for job in pub.api("GET", f"/v1/content/{echo}/jobs").json())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert pub.get(f"/content/{echo}/headers").status_code == 200  # the active bundle serves on


# -- who may change content, and when ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pat(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> tuple[Publishing, Path, str]:
    """Publisher `pat` (a web password, a key, rsconnect of their own) and the static site they deployed."""
    web_user(pub.server, "pat", "publisher", PASSWORD)
    key = pub.server.cli("key", "create", "--user", "pat", "-q").stdout.strip()
    publisher = Publishing(pub.server, key, tmp_path_factory.mktemp("pat-home"))
    publisher.rsconnect("add", "--server", pub.server.url, "--name", "packyard", "--api-key", key)
    app = copy_app("html-site", tmp_path_factory.mktemp("pat-apps"))
    result = publisher.deploy("html", app)
    assert "Deployment completed successfully." in result.stdout + result.stderr
    return publisher, app, publisher.record(app)["app_guid"]


def set_role(pub: Publishing, username: str, role: str) -> None:
    """What an administrator runs; the server applies it through the change log."""
    pub.server.cli("user", "set-role", username, role)
    pub.server.wait_synced()


def writes(guid: str, bundle: str) -> list[tuple[str, str, dict]]:
    """A call to every endpoint that changes a content item, each with a body it would take; deleting the
    content comes last."""
    upload = tarball({"index.html": b"<h1>new</h1>", "manifest.json": manifest("static", None)})
    return [
        ("PATCH", f"/v1/content/{guid}", {"json": {"title": "Taken over"}}),
        ("PATCH", f"/v1/content/{guid}", {"json": {"access_type": "all"}}),
        ("PATCH", f"/v1/content/{guid}", {"json": {"max_processes": 2}}),
        ("PATCH", f"/v1/content/{guid}/environment", {"json": [{"name": "TOKEN", "value": "x"}]}),
        ("POST", f"/v1/content/{guid}/bundles", {"content": upload}),
        ("POST", f"/v1/content/{guid}/deploy", {"json": {"bundle_id": bundle}}),
        ("POST", f"/v1/content/{guid}/build", {"json": {"bundle_id": bundle}}),
        ("DELETE", f"/v1/content/{guid}/bundles/{bundle}", {}),
        ("DELETE", f"/v1/content/{guid}", {}),
    ]


def test_a_publisher_demoted_to_viewer_changes_nothing(pub: Publishing, pat: tuple[Publishing, Path, str]) -> None:
    publisher, app, guid = pat
    bundle = publisher.api("GET", f"/v1/content/{guid}").json()["bundle_id"]
    demoted = (
        f"User `pat` has role `viewer`, which cannot publish or change content (`{guid}`); "
        "an administrator can run `packyard user set-role pat publisher`."
    )
    set_role(pub, "pat", "viewer")
    try:
        index = app / "index.html"
        index.write_text(index.read_text().replace("version 1", "version 2"))
        redeploy = publisher.deploy("html", app, check=False)
        assert redeploy.returncode == 1
        assert f"(calling /__api__/v1/content/{guid}/bundles): {demoted}" in redeploy.stdout + redeploy.stderr
        for method, path, kwargs in writes(guid, bundle):
            answer = publisher.api(method, path, **kwargs)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json() == {"error": demoted, "code": 6, "payload": None}, (method, path)
        created = publisher.api("POST", "/v1/content", json={"name": "pats-second"})
        assert created.status_code == 403 and "which cannot publish" in created.json()["error"]
        # What they own stays theirs to read, and serving as it was.
        assert publisher.api("GET", f"/v1/content/{guid}/bundles").status_code == 200
        assert "version 1" in publisher.get(f"/content/{guid}/").text
        # The pages refuse the same way: the access form, signed in as pat.
        with signed_in(pub, "pat") as client:
            form = client.get(f"/connect/apps/{guid}/access").text
            token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            saved = client.post(f"/connect/apps/{guid}/access", data={"csrf_token": token, "access_type": "all"})
            assert saved.status_code == 403 and "which cannot publish or change content" in saved.text
    finally:
        set_role(pub, "pat", "publisher")
    assert publisher.api("GET", f"/v1/content/{guid}").json()["access_type"] == "acl"
    result = publisher.deploy("html", app)  # a publisher again
    assert "Deployment completed successfully." in result.stdout + result.stderr


def test_locked_content_takes_no_deploys_or_changes(pub: Publishing, pat: tuple[Publishing, Path, str]) -> None:
    publisher, app, guid = pat
    bundle = publisher.api("GET", f"/v1/content/{guid}").json()["bundle_id"]
    locked = publisher.api("PATCH", f"/v1/content/{guid}", json={"locked": True, "locked_message": "Moved to /new."})
    assert locked.status_code == 200 and (locked.json()["locked"], locked.json()["locked_message"]) == (
        True,
        "Moved to /new.",
    )
    refusal = (
        f"Content `{guid}` is locked: Moved to /new. It takes no deploys or changes until its owner or an "
        f'administrator unlocks it: `PATCH /__api__/v1/content/{guid}` with `{{"locked": false}}`.'
    )
    redeploy = publisher.deploy("html", app, check=False)
    assert redeploy.returncode == 1
    assert f"(calling /__api__/v1/content/{guid}/bundles): {refusal}" in redeploy.stdout + redeploy.stderr
    pub.server.cli("user", "create", "ada", "--role", "admin")
    admin = Publishing(pub.server, pub.server.cli("key", "create", "--user", "ada", "-q").stdout.strip(), pub.home)
    for caller in (publisher, admin):  # an administrator unlocks first, too
        for method, path, kwargs in writes(guid, bundle):
            answer = caller.api(method, path, **kwargs)
            assert answer.status_code == 409, (method, path, answer.text)
            assert answer.json() == {"error": refusal, "code": 3, "payload": None}, (method, path)
    # A PATCH of the lock's own fields is taken; mixed with any other field, it is not.
    mixed = publisher.api("PATCH", f"/v1/content/{guid}", json={"locked": False, "title": "Back"})
    assert mixed.status_code == 409
    reworded = publisher.api("PATCH", f"/v1/content/{guid}", json={"locked_message": "Gone for good."})
    assert reworded.json()["locked"] is True and reworded.json()["locked_message"] == "Gone for good."
    unlocked = publisher.api("PATCH", f"/v1/content/{guid}", json={"locked": False})
    assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
    result = publisher.deploy("html", app)
    assert "Deployment completed successfully." in result.stdout + result.stderr
