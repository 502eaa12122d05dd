"""`Database.session()`: a PostgreSQL out of reach is DatabaseUnavailable (a 503 every surface renders), a statement's
own failure and SQLite's errors stay what they are."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from packyard.db import Database, unavailable
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


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("connection to server at 10.1.2.3 ...")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "invalidated", "dialect", "reason"),
    [
        (None, False, "postgresql", "cannot connect"),
        (None, True, "postgresql", "connection lost"),
        ("08006", False, "postgresql", "connection lost"),
        ("57P01", True, "postgresql", "it is shutting down"),
        ("57P03", False, "postgresql", "it is starting up"),
        ("53300", False, "postgresql", "too many connections"),
        ("40001", False, "postgresql", None),  # a serialization failure is the statement's own
        ("57014", False, "postgresql", None),  # and so is a statement timeout
        (None, False, "sqlite", None),
    ],
)
def test_what_counts_as_out_of_reach(sqlstate: str | None, invalidated: bool, dialect: str, reason: str | None) -> None:
    error = OperationalError("SELECT 1", {}, _DriverError(sqlstate), connection_invalidated=invalidated)
    assert unavailable(error, dialect) == reason
