"""The admin overview's recent changes, read by httpx signed in through the real login form: each change made with
the real CLI is shown as words and names (users, keys, tokens, content, sources, repositories, rules), never as
bare ids or event kinds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from packyard.db import Database
from packyard.publishing.models import Content, User
from tests.browser import web_user
from tests.conftest import Server, _start, fresh_database

PASSWORD = "correct horse battery"
GUID = "6f1c1b8e-0000-4000-8000-0000000000c7"


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fresh_database("sqlite") as url:
        server = _start(tmp_path_factory.mktemp("packyard-changes"), url)
        try:
            yield server
        finally:
            server.stop()


def sql(server: Server, statement: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(server.sql_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


class _Table(HTMLParser):
    """The cells' text of the table labelled `recent`, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._inside = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("aria-labelledby", "recent") in attrs:
            self._inside = True
        elif self._inside and tag == "tr":
            self.rows.append([])
        elif self._inside and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._inside = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def admin_overview(server: Server, username: str, password: str) -> str:
    """`/admin/` as `username` sees it after signing in through the login form."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        form = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None, form
        fields = {"username": username, "password": password, "csrf_token": csrf.group(1), "next": "/admin/"}
        signed_in = client.post("/login", data=fields, follow_redirects=True)
        assert signed_in.status_code == 200 and signed_in.url.path == "/admin/", signed_in.text
        return signed_in.text


def test_recent_changes_name_what_they_touched(changed: Server) -> None:
    server = changed
    web_user(server, "ada", "admin", PASSWORD)
    server.cli("user", "create", "bob", "--role", "publisher")
    server.cli("user", "set-role", "bob", "viewer")
    server.cli("key", "create", "--user", "bob", "--name", "laptop", "-q")
    (key_id,) = sql(server, "SELECT id FROM api_keys")[0]
    server.cli("key", "revoke", str(key_id))
    server.cli("token", "create", "-q", "--description", "CI uploads", "--scope", "sources:write",
               "--sources", "local-python-src")  # fmt: skip
    (jti,) = sql(server, "SELECT jti FROM tokens")[0]
    server.cli("token", "revoke", str(jti))
    server.cli("source", "create", "--name", "team-src")
    server.cli("repo", "create", "--name", "team")
    server.cli("repo", "subscribe", "--repo", "team", "--source", "team-src")
    server.cli("repo", "edit", "--name", "team", "--authenticated")
    server.cli("policy", "block", "left-pad", "--version", "<2", "--repo", "team", "--reason", "CVE-2026-1")
    db = Database(server.sql_url)  # content as a deploy leaves it (deploys have their own tests)
    try:
        with db.session() as session:
            owner = session.scalar(select(User.id).where(User.username == "bob"))
            session.add(Content(guid=GUID, name="sales-api", title="Sales API", owner_id=owner))
    finally:
        db.dispose()
    server.cli("content", "runtime", GUID, "--min-processes", "1")

    html = admin_overview(server, "ada", PASSWORD)
    table = _Table()
    table.feed(html)
    assert table.rows[0] == ["When", "Change", "Detail"]
    shown = [" | ".join(row[1:]) for row in table.rows[1:]]
    assert shown[:12] == [
        "Runtime settings changed | “Sales API” (sales-api)",
        "Block rule added | rule 1, left-pad<2 in team: CVE-2026-1",
        "Repository changed | team now needs a token to read",
        "Source subscribed | team serves team-src (priority 1)",
        "Repository created | team",
        "Source created | team-src, for uploads",
        "Token revoked | “CI uploads”",
        "Token created | “CI uploads”",
        "API key revoked | key “laptop” of bob",
        "API key created | key “laptop” of bob",
        "Role changed | bob is now viewer",
        "User created | bob, as publisher",
    ]
    cells = " ".join(" ".join(row) for row in table.rows)
    for raw in (jti, GUID, "token-create", "key-revoke", "repo-edit", "authenticated=True", "block 1"):
        assert str(raw) not in cells
    assert "<code>sales-api</code>" in html and "<code>bob</code>" in html
