"""The change log on PostgreSQL: an event committed after a later-numbered one still reaches the page cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert

from packyard.changelog import follower
from packyard.changelog.events import Event
from packyard.changelog.prepare import prepare
from packyard.db import Database
from packyard.repository.index.page_cache import PageCache
from tests.conftest import fresh_database


@pytest.fixture
def database() -> Iterator[Database]:
    with fresh_database("postgresql") as url:
        db = Database(url)
        prepare(db)
        try:
            yield db
        finally:
            db.dispose()


def test_an_event_committed_late_is_not_skipped(database: Database) -> None:
    cache = PageCache(database)
    early = database.engine.connect()
    early_tx = early.begin()
    early_id = early.execute(insert(Event).values(kind="upload", project="slow").returning(Event.id)).scalar_one()
    with database.engine.begin() as later:  # takes the next id and commits first
        later.execute(insert(Event).values(kind="upload", project="fast"))

    assert [e.project for e in cache.sync()] == ["fast"]
    early_tx.commit()
    early.close()
    late = cache.sync()
    assert [(e.id, e.project) for e in late] == [(early_id, "slow")]
    assert cache.sync() == []  # applied once


def test_a_rolled_back_id_is_forgotten(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = PageCache(database)
    with database.engine.connect() as conn:
        tx = conn.begin()
        conn.execute(insert(Event).values(kind="upload", project="never"))
        tx.rollback()
    with database.engine.begin() as conn:
        conn.execute(insert(Event).values(kind="upload", project="kept"))
    assert [e.project for e in cache.sync()] == ["kept"]
    assert cache._follower.gaps  # the rolled-back id is looked for ...
    monkeypatch.setattr(follower, "GAP_SECONDS", -1)
    cache.sync()
    assert not cache._follower.gaps  # ... until it is old enough to be given up
