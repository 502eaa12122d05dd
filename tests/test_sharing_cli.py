"""Sharing from the command line (issue 14): `packyard group ...` and `packyard content share|unshare|access`, run
as the real CLI on the server host against a running server on SQLite and PostgreSQL. Each change is in the change
log, and the server lets the people it names in (or keeps them out) within a second."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable

import httpx
from sqlalchemy import create_engine, select, text

from packyard.db import Database
from packyard.publishing.models import Content, User
from tests.conftest import Server

GUID = "6f1c1b8e-0000-4000-8000-0000000000d1"


def events(server: Server, *kinds: str) -> list[tuple[str, str]]:
    engine = create_engine(server.sql_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT kind, detail FROM events ORDER BY id")
            return [(kind, detail) for kind, detail in conn.execute(query) if kind in kinds]
    finally:
        engine.dispose()


def error_of(server: Server, *args: str) -> str:
    """The CLI's `error:` and `hint:` lines for a command that must fail, with exit code 1."""
    result = server.cli(*args, check=False)
    assert result.returncode == 1, f"packyard {shlex.join(args)} succeeded:\n{result.stdout}{result.stderr}"
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Using data directory")]
    return "\n".join(lines).strip()


def suggested(message: str) -> list[str]:
    """The arguments of the `packyard ...` command a message suggests, to run as printed."""
    commands = [part for part in message.split("`")[1::2] if part.startswith("packyard ")]
    assert len(commands) == 1, message
    return shlex.split(commands[0])[1:]


def eventually(check: Callable[[], bool], within: float = 3.0) -> float:
    """Seconds until `check()` held; fails after `within`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"still not so after {within} s"
        time.sleep(0.05)
    return time.monotonic() - started


def add_content(server: Server, owner: str) -> None:
    """A content row as a deploy leaves it (deploys have their own tests); shared only with its owner."""
    db = Database(server.sql_url)
    try:
        with db.session() as session:
            owner_id = session.scalar(select(User.id).where(User.username == owner))
            session.add(Content(guid=GUID, name="sales-report", title="Sales report", owner_id=owner_id))
    finally:
        db.dispose()


def test_groups_are_made_filled_and_deleted(server: Server) -> None:
    for name, role in (("gina", "publisher"), ("gus", "viewer")):
        server.cli("user", "create", name, "--role", role)
    created = server.cli("group", "create", "data team").stdout
    assert created.startswith("Created group `data team` (")
    assert "hint: `packyard group add 'data team' USER...` adds members." in created

    added = server.cli("group", "add", "data team", "gina", "gus").stdout
    assert added.splitlines() == ["Added `gina` to group `data team`.", "Added `gus` to group `data team`."]
    again = server.cli("group", "add", "data team", "gus").stdout
    assert again.strip() == "`gus` was a member of group `data team` already."
    listed = server.cli("group", "list").stdout.splitlines()
    assert listed[0].split() == ["GROUP", "MEMBERS", "GUID"]
    assert listed[1].split()[:3] == ["data", "team", "2"]
    members = [line.split() for line in server.cli("group", "members", "data team").stdout.splitlines()]
    assert members == [["USER", "ROLE", "STATE"], ["gina", "publisher", "active"], ["gus", "viewer", "active"]]

    server.cli("group", "remove", "data team", "gus")
    assert [line.split()[0] for line in server.cli("group", "members", "data team").stdout.splitlines()[1:]] == ["gina"]
    server.cli("group", "delete", "data team")
    assert server.cli("group", "list").stdout.splitlines()[1:] == []
    assert events(server, "group-create", "group-member-add", "group-member-remove", "group-delete") == [
        ("group-create", "data team"),
        ("group-member-add", "data team gina"),
        ("group-member-add", "data team gus"),
        ("group-member-remove", "data team gus"),
        ("group-delete", "data team"),
    ]


def test_group_errors_quote_the_value_and_name_the_next_command(server: Server) -> None:
    server.cli("group", "create", "ops")
    assert error_of(server, "group", "create", "ops") == (
        "error: Group `ops` already exists; `packyard group list` shows every group."
    )
    assert error_of(server, "group", "create", "bad/name") == (
        "error: Group name 'bad/name' is not valid; use up to 100 letters, digits, spaces, `.`, `_`, `@` or `-`, "
        "starting with a letter or digit."
    )
    assert error_of(server, "group", "members", "nobody") == (
        "error: There is no group `nobody`; `packyard group list` shows every group."
    )
    assert error_of(server, "group", "remove", "ops", "gina") == "error: User `gina` is not a member of group `ops`."
    # The command an error suggests runs as printed, and then the first one works.
    said = error_of(server, "group", "add", "ops", "olga")
    assert said == "error: There is no user `olga`; `packyard user create olga --role publisher` adds one."
    server.cli(*suggested(said))
    server.cli("group", "add", "ops", "olga")
    # The refused attempt left nothing: one event, from the second.
    assert [e for e in events(server, "group-member-add") if e[1] == "ops olga"] == [("group-member-add", "ops olga")]


def test_content_is_shared_changed_and_unshared_and_the_server_follows(server: Server) -> None:
    server.cli("user", "create", "sam", "--role", "publisher")
    server.cli("user", "create", "vic", "--role", "viewer")
    add_content(server, "sam")
    key = server.cli("key", "create", "--user", "vic", "-q").stdout.strip()

    def vic_sees_it() -> bool:
        answer = httpx.get(f"{server.url}/__api__/v1/content/{GUID}", headers={"Authorization": f"Key {key}"})
        assert answer.status_code in (200, 403), answer.text
        return answer.status_code == 200

    assert not vic_sees_it()
    shared = server.cli("content", "share", "sales-report", "--user", "vic").stdout
    assert shared.strip() == f"Shared `sales-report` ({GUID}) with user `vic` as viewer."
    eventually(vic_sees_it, within=1.5)

    access = server.cli("content", "access", GUID[:8]).stdout.splitlines()
    assert access[:3] == [
        f"Content: `sales-report` ({GUID})",
        "Owner:   `sam`",
        "Access:  acl (its owner, the users and groups it is shared with, and administrators)",
    ]
    assert [line.split() for line in access[4:]] == [["NAME", "TYPE", "ROLE"], ["vic", "user", "viewer"]]

    # A viewer cannot collaborate; the error says what to run, which runs as printed, and then the share does.
    said = error_of(server, "content", "share", GUID, "--user", "vic", "--role", "owner")
    assert said == (
        "error: User `vic` has role `viewer`, which cannot be a collaborator; share it as `viewer`, or an "
        "administrator can run `packyard user set-role vic publisher` first."
    )
    server.cli(*suggested(said))
    changed = server.cli("content", "share", GUID, "--user", "vic", "--role", "collaborator").stdout
    assert changed.strip() == f"Changed the role of user `vic` on `sales-report` ({GUID}) to owner (collaborator)."
    kept = server.cli("content", "share", GUID, "--user", "vic", "--role", "owner").stdout
    assert kept.strip() == f"`sales-report` ({GUID}) was shared with user `vic` as owner (collaborator) already."

    server.cli("group", "create", "readers")
    server.cli("content", "share", GUID, "--group", "readers")
    access = server.cli("content", "access", GUID).stdout.splitlines()
    assert [line.split() for line in access[5:]] == [
        ["vic", "user", "owner", "(collaborator)"],
        ["readers", "group", "viewer"],
    ]

    unshared = server.cli("content", "unshare", GUID, "--user", "vic").stdout
    assert (
        unshared.strip() == f"`sales-report` ({GUID}) is no longer shared with user `vic` (was owner (collaborator))."
    )
    eventually(lambda: not vic_sees_it(), within=1.5)
    assert events(server, "permission-add", "permission-change", "permission-remove") == [
        ("permission-add", f"{GUID} user:vic viewer"),
        ("permission-change", f"{GUID} user:vic owner"),
        ("permission-add", f"{GUID} group:readers viewer"),
        ("permission-remove", f"{GUID} user:vic owner"),
    ]


def test_sharing_errors_change_nothing(server: Server) -> None:
    before = events(server, "permission-add", "permission-change", "permission-remove")
    assert error_of(server, "content", "share", GUID, "--role", "viewer") == (
        f"error: Give one of `--user` and `--group` to `packyard content share`\n\n"
        f"hint: For example: `packyard content share {GUID} --user NAME`."
    )
    assert error_of(server, "content", "unshare", GUID, "--user", "vic", "--group", "readers").startswith(
        "error: Give one of `--user` and `--group` to `packyard content unshare`"
    )
    assert error_of(server, "content", "share", GUID, "--user", "nobody") == (
        "error: There is no user `nobody`; `packyard user create nobody --role publisher` adds one."
    )
    assert error_of(server, "content", "share", GUID, "--group", "writers") == (
        "error: There is no group `writers`; `packyard group list` shows every group."
    )
    assert error_of(server, "content", "share", GUID, "--user", "vic", "--role", "boss") == (
        "error: Role 'boss' is not known; use `viewer`, or `owner` for a collaborator."
    )
    assert error_of(server, "content", "share", GUID, "--user", "sam") == (
        f"error: User `sam` owns content `{GUID}`; an owner needs no permission."
    )
    assert error_of(server, "content", "unshare", GUID, "--user", "vic") == (
        f"error: Content `{GUID}` is not shared with user `vic`; `packyard content access {GUID}` shows who it is "
        "shared with."
    )
    assert error_of(server, "content", "access", "no-such-content") == (
        "error: No content with GUID or name `no-such-content`; `packyard content list` shows them"
    )
    assert events(server, "permission-add", "permission-change", "permission-remove") == before
