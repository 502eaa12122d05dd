"""The content origin's tickets: where one may lead (`content_target`), and that each is used once, in time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from packyard.changelog.prepare import prepare
from packyard.db import Database, utcnow
from packyard.publishing import signin
from packyard.publishing.errors import BadContentTarget, BadTicket
from packyard.publishing.models import ContentTicket, WebSession
from packyard.publishing.proxy.origins import content_target
from packyard.publishing.users import create_user
from tests.conftest import fresh_database

GUID = "0b7e1c3a-54f7-4b9e-9a51-1d2c3e4f5a6b"
LIFETIME = timedelta(hours=1)


@pytest.mark.parametrize("target", [f"/content/{GUID}/", f"/content/{GUID}/page?tab=2&x=%2F", "/content/"])
def test_a_ticket_leads_to_content_paths(target: str) -> None:
    assert content_target(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        None,
        "http://evil.example/content/x/",
        "//evil.example/content/x/",
        "/\\evil.example/",
        "/content\\..\\admin/",
        "/admin/",
        "/__api__/v1/user",
        "/content/../admin/",
        "/content/%2e%2e/admin/",
        "/content/x/\r\nSet-Cookie: a=b",
        "content/x/",
    ],
)
def test_a_ticket_leads_nowhere_else(target: str | None) -> None:
    with pytest.raises(BadContentTarget, match="leads only to a content path such as `/content/<guid>/`"):
        content_target(target)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with fresh_database(request.param) as url:
        db = Database(url or f"sqlite:///{tmp_path_factory.mktemp('db') / 'packyard.db'}")
        prepare(db)
        try:
            yield db
        finally:
            db.dispose()


def test_a_ticket_starts_one_content_session_once(database: Database) -> None:
    with database.session() as session:
        user = create_user(session, "vera", "viewer")
        main = signin.start_session(session, user, LIFETIME)
        ticket = signin.issue_ticket(session, user.id)
    with database.session() as session:
        token = signin.redeem_ticket(session, ticket, LIFETIME)
    with database.session() as session, pytest.raises(BadTicket, match="not known or was already used"):
        signin.redeem_ticket(session, ticket, LIFETIME)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ContentTicket)) == 0
        # Each session opens only its own origin.
        found = signin.find_session(session, token, signin.CONTENT)
        assert found is not None and found.caller.username == "vera"
        assert signin.find_session(session, token, signin.MAIN) is None
        assert signin.find_session(session, main, signin.CONTENT) is None
        assert signin.find_session(session, main) is not None
    with database.session() as session:  # signing out ends the content session too
        signin.end_session(session, main)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(WebSession)) == 0


def test_an_expired_or_unknown_ticket_starts_nothing(database: Database) -> None:
    with database.session() as session:
        user = create_user(session, "vera", "viewer")
        ticket = signin.issue_ticket(session, user.id)
        session.execute(update(ContentTicket).values(expires_at=utcnow() - timedelta(seconds=1)))
    with database.session() as session, pytest.raises(BadTicket, match="expired: a ticket is valid for 60 seconds"):
        signin.redeem_ticket(session, ticket, LIFETIME)
    with database.session() as session, pytest.raises(BadTicket, match="not known"):
        signin.redeem_ticket(session, "forged", LIFETIME)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(WebSession)) == 0


def test_signing_out_of_another_browser_keeps_nothing_it_should_not(database: Database) -> None:
    """Ending a content-origin session's token as if it were a main one does nothing."""
    with database.session() as session:
        user = create_user(session, "vera", "viewer")
        main = signin.start_session(session, user, LIFETIME)
        content = signin.redeem_ticket(session, signin.issue_ticket(session, user.id), LIFETIME)
        signin.end_session(session, content)
    with database.session() as session:
        assert signin.find_session(session, main) is not None
        assert signin.find_session(session, content, signin.CONTENT) is not None
