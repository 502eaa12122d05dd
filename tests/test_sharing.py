"""Sharing content (issue 14), driven by Posit's own SDK (posit-sdk) and rsconnect against a real server, on SQLite
and PostgreSQL: users found by prefix and page, groups and their members, a content's viewers and collaborators
with Connect's rules for each role, and what a change takes away at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from posit.connect import Client
from posit.connect.errors import ClientError

from tests.browser import web_user
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

PASSWORD = "correct horse battery"


@dataclass
class Team:
    """Alice publishes; pat publishes too; vera and victor view; root administers. Each has a key."""

    alice: Publishing
    keys: dict[str, str]
    site: Path  # the static site alice deployed
    guid: str
    clients: dict[str, Client] = field(default_factory=dict)

    def sdk(self, who: str) -> Client:
        """`who`'s posit-sdk client, kept: what it returns holds only a weak reference to it."""
        if who not in self.clients:
            self.clients[who] = Client(url=self.alice.server.url, api_key=self.keys[who])
        return self.clients[who]

    def as_(self, who: str) -> Publishing:
        """`who` with rsconnect set up for this server."""
        home = self.alice.home.parent / f"{who}-home"
        publisher = Publishing(self.alice.server, self.keys[who], home)
        if not home.exists():
            home.mkdir()
            publisher.rsconnect(
                "add", "--server", self.alice.server.url, "--name", "packyard", "--api-key", self.keys[who]
            )
        return publisher

    def api(self, who: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Key {self.keys[who]}"}
        return httpx.request(method, f"{self.alice.server.url}/__api__{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with publishing_server(request.param, tmp_path_factory.mktemp(f"packyard-sharing-{request.param}")) as server:
        alice = setup_publishing(server, tmp_path_factory.mktemp("homes") / "alice-home", wheels=None)
        keys = {"alice": alice.key}
        for name, role in (("root", "admin"), ("pat", "publisher"), ("vera", "viewer"), ("victor", "viewer")):
            web_user(server, name, role, PASSWORD)
            keys[name] = server.cli("key", "create", "--user", name, "-q").stdout.strip()
        site = copy_app("html-site", tmp_path_factory.mktemp("apps"))
        result = alice.deploy("html", site)
        assert "Deployment completed successfully." in result.stdout + result.stderr
        yield Team(alice, keys, site, alice.record(site)["app_guid"])


def test_users_are_found_by_prefix_and_counted_in_pages(team: Team) -> None:
    client = team.sdk("vera")  # any signed-in user may list users, as on Connect
    assert [u["username"] for u in client.users.find(prefix="V")] == ["vera", "victor"]
    assert client.users.find_one(prefix="pa")["user_role"] == "publisher"
    assert client.users.find_one(prefix="ro")["user_role"] == "administrator"
    assert client.users.count() == 5
    page = team.api("vera", "GET", "/v1/users", params={"page_size": 2, "page_number": 2}).json()
    assert (page["current_page"], page["total"]) == (2, 5)
    assert [u["username"] for u in page["results"]] == ["root", "vera"]  # alice, pat | root, vera | victor
    assert client.users.get(client.me["guid"])["username"] == "vera"
    bad = team.api("vera", "GET", "/v1/users", params={"page_size": 0})
    assert bad.status_code == 400 and "`page_size` from 1 to 500" in bad.json()["error"]


def test_a_viewer_and_a_collaborator_are_added_listed_and_removed(team: Team) -> None:
    client = team.sdk("alice")
    content = client.content.get(team.guid)
    assert content["app_role"] == "owner"
    vera, pat = client.users.find_one(prefix="vera"), client.users.find_one(prefix="pat")
    content.permissions.create(vera, role="viewer")
    content.permissions.create(pat, role="owner")
    listed = {(p["principal_guid"], p["principal_type"], p["role"]) for p in content.permissions.find()}
    assert listed == {(vera["guid"], "user", "viewer"), (pat["guid"], "user", "owner")}
    assert team.sdk("pat").content.get(team.guid)["app_role"] == "editor"
    assert team.sdk("vera").content.get(team.guid)["app_role"] == "viewer"
    assert team.guid not in {c["guid"] for c in team.sdk("victor").content.find()}

    # The collaborator redeploys with rsconnect; the viewer can open the content but not its variables or logs.
    pat_cli = team.as_("pat")
    result = pat_cli.deploy("html", team.site, "--app-id", team.guid)
    assert "Deployment completed successfully." in result.stdout + result.stderr
    assert (
        httpx.get(
            f"{team.alice.server.url}/content/{team.guid}/", headers={"Authorization": f"Key {team.keys['vera']}"}
        ).status_code
        == 200
    )
    for path in ("environment", "jobs", "log", "permissions", "bundles"):
        refused = team.api("vera", "GET", f"/v1/content/{team.guid}/{path}")
        assert refused.status_code == 403, path
        assert "is not an owner or collaborator" in refused.json()["error"]
    assert team.api("victor", "GET", f"/content/{team.guid}/").status_code in (401, 403, 404)

    # Removing the collaborator takes deploying away at once.
    content.permissions.destroy(pat)
    again = pat_cli.deploy("html", team.site, "--app-id", team.guid, check=False)
    assert again.returncode != 0
    assert f"User `pat` may not see content `{team.guid}`; ask its owner to share it with you." in again.stdout
    content.permissions.destroy(vera)
    assert content.permissions.find() == []


def test_only_a_publisher_can_be_a_collaborator(team: Team) -> None:
    content = team.sdk("alice").content.get(team.guid)
    vera = team.sdk("alice").users.find_one(prefix="vera")
    with pytest.raises(ClientError) as refused:
        content.permissions.create(vera, role="owner")
    assert refused.value.http_status == 400
    assert "User `vera` has role `viewer`, which cannot be a collaborator" in refused.value.error_message
    assert content.permissions.find() == []


def test_bad_and_hostile_permission_requests_change_nothing(team: Team) -> None:
    guid = team.guid
    vera = team.sdk("alice").users.find_one(prefix="vera")["guid"]
    cases = [
        ("alice", {"principal_guid": vera, "principal_type": "robot", "role": "viewer"}, 400, "use `user` or `group`"),
        ("alice", {"principal_guid": vera, "principal_type": "user", "role": "admin"}, 400, "use `viewer`, or `owner`"),
        ("alice", {"principal_guid": "nobody", "principal_type": "user", "role": "viewer"}, 404, "no user with guid"),
        ("alice", ["not", "an", "object"], 400, "Send a JSON object"),
        # A viewer, or a publisher who is not on the content, cannot share it, least of all with themselves.
        ("vera", {"principal_guid": vera, "principal_type": "user", "role": "viewer"}, 403, "cannot publish"),
        ("pat", {"principal_guid": vera, "principal_type": "user", "role": "viewer"}, 403, "not an owner or"),
    ]
    for who, body, status, words in cases:
        answer = team.api(who, "POST", f"/v1/content/{guid}/permissions", json=body)
        assert answer.status_code == status, (who, body, answer.text)
        assert words in answer.json()["error"], answer.text
    owner = team.sdk("alice").me["guid"]
    answer = team.api("alice", "POST", f"/v1/content/{guid}/permissions",
                      json={"principal_guid": owner, "principal_type": "user", "role": "viewer"})  # fmt: skip
    assert answer.status_code == 409 and "owns content" in answer.json()["error"]
    first = team.api("alice", "POST", f"/v1/content/{guid}/permissions",
                     json={"principal_guid": vera, "principal_type": "user", "role": "viewer"})  # fmt: skip
    twice = team.api("alice", "POST", f"/v1/content/{guid}/permissions",
                     json={"principal_guid": vera, "principal_type": "user", "role": "viewer"})  # fmt: skip
    assert first.status_code == 200 and twice.status_code == 409
    assert f"permissions/{first.json()['id']}" in twice.json()["error"]
    assert team.api("alice", "DELETE", f"/v1/content/{guid}/permissions/{first.json()['id']}").status_code == 204
    assert team.api("alice", "GET", f"/v1/content/{guid}/permissions").json() == []


def test_groups_hold_members_and_share_content(team: Team) -> None:
    root = team.sdk("root")
    group = root.groups.create(name="analysts")
    victor = root.users.find_one(prefix="victor")
    group.members.add(victor)
    assert [u["username"] for u in group.members.find()] == ["victor"]
    assert root.groups.find(prefix="ana")[0]["guid"] == group["guid"]
    with pytest.raises(ClientError) as refused:  # groups are the administrators' to make
        team.sdk("alice").groups.create(name="mine")
    assert refused.value.http_status == 403

    content = team.sdk("alice").content.get(team.guid)
    permission = content.permissions.create(group, role="viewer")
    assert permission["principal_type"] == "group"
    opened = httpx.get(
        f"{team.alice.server.url}/content/{team.guid}/", headers={"Authorization": f"Key {team.keys['victor']}"}
    )
    assert opened.status_code == 200
    assert team.sdk("victor").content.get(team.guid)["app_role"] == "viewer"

    group.members.delete(victor)
    team.alice.server.wait_synced()  # the proxy's cache follows the change log
    closed = httpx.get(
        f"{team.alice.server.url}/content/{team.guid}/", headers={"Authorization": f"Key {team.keys['victor']}"}
    )
    assert closed.status_code == 403
    group.delete()
    assert content.permissions.find() == []


def test_a_collaborator_demoted_or_locked_loses_it_at_once(team: Team) -> None:
    client = team.sdk("alice")
    content = client.content.get(team.guid)
    permission = content.permissions.create(client.users.find_one(prefix="pat"), role="owner")
    pat = team.as_("pat")
    try:
        team.alice.server.cli("user", "set-role", "pat", "viewer")
        team.alice.server.wait_synced()  # the change log reaches the server within half a second
        refused = pat.deploy("html", team.site, "--app-id", team.guid, check=False)
        assert refused.returncode != 0
        assert "User `pat` has role `viewer`, which cannot publish or change content" in refused.stdout
        assert team.api("pat", "GET", f"/v1/content/{team.guid}").json()["app_role"] == "viewer"
        team.alice.server.cli("user", "set-role", "pat", "publisher")
        team.alice.server.cli("user", "lock", "pat")
        team.alice.server.wait_synced()
        locked = team.api("pat", "GET", f"/v1/content/{team.guid}")
        assert locked.status_code == 401 and "User `pat` is locked" in locked.json()["error"]
        opened = httpx.get(
            f"{team.alice.server.url}/content/{team.guid}/", headers={"Authorization": f"Key {team.keys['pat']}"}
        )
        assert opened.status_code == 401
    finally:
        team.alice.server.cli("user", "unlock", "pat")
        permission.destroy()
