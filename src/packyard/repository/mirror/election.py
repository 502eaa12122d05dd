"""One download of an upstream file across every node and worker: the downloader is elected with PostgreSQL's
session advisory lock on the file's digest, held on a connection of its own while the download runs.

A process that does not get the lock waits for the blob to appear in the shared store, trying the lock again
as it polls: if the downloader failed (or its node died, which drops its connection and so its lock), the next
one to get the lock downloads instead. On SQLite, one process serves, and the mirror's in-memory task map alone
gives one download per file.
"""

from __future__ import annotations

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

# Class 2 of the two-key advisory locks (indexer.py's project renders use class 1).
_TRY = text("SELECT pg_try_advisory_lock(2, hashtext(:digest))")
_UNLOCK = text("SELECT pg_advisory_unlock(2, hashtext(:digest))")


class Election:
    """A connection per file asked for (`connect`), on which `try_lock` asks to be its downloader; `release` ends
    both. A waiter keeps its connection and asks again as it polls."""

    def __init__(self, database_url: str) -> None:
        # Outside the request pool, so many downloads never starve requests; autocommit, so a long download
        # leaves no transaction open.
        self.enabled = database_url.startswith("postgresql")
        self._engine = (
            create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT") if self.enabled else None
        )

    def connect(self) -> Connection:
        assert self._engine is not None
        return self._engine.connect()

    def try_lock(self, connection: Connection, digest: str) -> bool:
        return bool(connection.execute(_TRY, {"digest": digest}).scalar())

    def release(self, connection: Connection, digest: str, held: bool) -> None:
        try:
            if held:
                connection.execute(_UNLOCK, {"digest": digest})
        finally:
            connection.close()  # closing alone would release it too: the lock lives as long as the session

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
