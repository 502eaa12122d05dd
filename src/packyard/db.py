"""Database engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Engine, MetaData, Table, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from packyard.errors import DatabaseUnavailable

log = logging.getLogger("packyard.db")
# PostgreSQL's SQLSTATEs for a server that is going away or not there yet: connection exceptions (08), shutdown
# (57P01 admin, 57P02 crash), starting up (57P03), too many connections (53300). A client-side failure to connect
# has none. Serialization failures and deadlocks (40) and statement timeouts (57014) are the statement's own.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
# A database that does not answer at all (a host gone, packets dropped) fails a connection within this many
# seconds instead of the kernel's two minutes of SYN retries.
CONNECT_TIMEOUT = 5

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's Table, for the statements built once with bind parameters (mypy types `__table__` loosely)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored naive in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets readers run while an upload commits; NORMAL sync is safe under WAL.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # Reads through a shared mapping instead of a read() per page: an upload touches random B-tree
            # pages of a large file, and a write by another pooled connection empties each private page cache.
            cursor.execute("PRAGMA mmap_size=1073741824")
            cursor.close()

        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


def unavailable(exc: DBAPIError, dialect: str) -> str | None:
    """What an error says of a database out of reach (a few words for clients: the driver's message names hosts),
    or None when a statement failed instead. Only PostgreSQL's count: SQLite is a file in the data directory, and
    its OperationalErrors (a locked database past the busy timeout, a missing table) are faults of this server,
    kept as the 500s they are."""
    state = getattr(exc.orig, "sqlstate", None)
    if dialect == "postgresql" and isinstance(exc, OperationalError | InterfaceError):
        if state in ("57P01", "57P02"):
            return "it is shutting down"
        if state == "57P03":
            return "it is starting up"
        if state == "53300":
            return "too many connections"
        if state is None and not exc.connection_invalidated:
            return "cannot connect"
        if state is None or state.startswith(_UNAVAILABLE_STATES):
            return "connection lost"
    return "connection lost" if exc.connection_invalidated else None


class Database:
    """An engine plus a session factory; `session()` commits on success and rolls back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; a database out of reach raises DatabaseUnavailable (503) instead of the driver's error."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except DBAPIError as exc:
            reason = unavailable(exc, self.engine.dialect.name)
            if reason is None:
                raise
            # One line, not a traceback per request: during an outage every request ends here.
            log.warning("The database is unavailable: %s", " ".join(str(exc.orig).split()))
            raise DatabaseUnavailable(reason) from exc

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        # alembic takes most of a second to import, and the CLI imports this module for `packyard --help` too.
        from packyard.migrations import upgrade  # noqa: PLC0415

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
