"""`Database.session()`: a PostgreSQL out of reach is DatabaseUnavailable (a 503 every surface renders), a statement's
own failure and SQLite's errors stay what they are."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from packyard.db import Database
from packyard.errors import DatabaseUnavailable
from tests.conftest import free_port


def test_a_refused_postgresql_is_database_unavailable_at_once() -> None:
    db = Database(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as raised, db.session() as session:
        session.execute(text("SELECT 1"))
    assert time.monotonic() - started < 5
    assert raised.value.status_code == 503 and raised.value.headers["Retry-After"]
    assert raised.value.message == "The database is unavailable (cannot connect); try again shortly."
    assert "127.0.0.1" not in raised.value.message  # the driver's message names hosts; the log has it
    assert isinstance(raised.value.__cause__, OperationalError)


def test_sqlite_errors_are_this_servers_faults_and_stay_500s(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'packyard.db'}")
    with pytest.raises(OperationalError), db.session() as session:
        session.execute(text("SELECT * FROM no_such_table"))
