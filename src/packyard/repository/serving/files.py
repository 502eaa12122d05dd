"""Find what a file URL serves: `/{repo}/{latest|date}/packages/{name}/{sha256}/{filename}[.metadata|.asc]`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.db import Database
from packyard.repository.index import indexer
from packyard.repository.index.page_cache import RepoInfo
from packyard.repository.models import CoreMetadata, DistFile, Project, Subscription
from packyard.repository.policy.rules import block_message, curated_specifier, matches, rules_for
from packyard.storage import BlobStore

MAX_CACHED = 100_000
MAX_CACHED_BYTES = 64 * 1024 * 1024
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class ServedFile:
    """A blob to send, or the bytes themselves (`.metadata` lives in the database)."""

    digest: str
    media_type: str
    size: int
    data: bytes | None = None
    # A mirrored file whose bytes have not arrived yet: fetch them from here (and check them against `digest`).
    upstream: str | None = None
    source_id: int = 0
    # Set when policy blocks the file: the message of the 403.
    blocked: str | None = None


def cutoff_of(day: date) -> datetime:
    """The end of `day` in UTC: a snapshot shows what happened before it."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


class FileIndex:
    """Maps file URLs to what they serve. Entries are immutable (content-addressed) until subscriptions or
    policy change; mirrored files not yet fetched are not cached."""

    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store
        self._cache: dict[tuple[int, str, str, str], ServedFile | None] = {}
        self._cached_bytes = 0

    def clear(self) -> None:
        self._cache.clear()
        self._cached_bytes = 0

    def cached(self, repo_id: int, sha256: str, filename: str, day: str = "") -> ServedFile | None | Literal[False]:
        """The cached answer (a file or None for "not here"), or False when `find` must be called."""
        return self._cache.get((repo_id, day, sha256, filename), False)

    def find(self, repo: RepoInfo, sha256: str, filename: str, day: date | None = None) -> ServedFile | None:
        """Look a URL up in the database; call it off the event loop."""
        base, kind = filename, "file"
        for suffix in (".metadata", ".asc"):
            if filename.endswith(suffix):
                base, kind = filename.removesuffix(suffix), suffix
        with self.db.session() as session:
            found = self._find(session, repo, sha256, base, kind, day)
        if found is not None and found.upstream is not None:
            return found  # changes once the bytes arrive
        size = len(found.data) if found is not None and found.data is not None else 0
        if len(self._cache) >= MAX_CACHED or self._cached_bytes + size > MAX_CACHED_BYTES:
            self.clear()
        self._cache[(repo.id, day.isoformat() if day else "", sha256, filename)] = found
        self._cached_bytes += size
        return found

    def _find(
        self, session: Session, repo: RepoInfo, sha256: str, base: str, kind: str, day: date | None
    ) -> ServedFile | None:
        row = session.execute(
            select(
                DistFile.source_id,
                DistFile.sha256,
                DistFile.size,
                DistFile.version,
                DistFile.metadata_sha256,
                DistFile.signature_sha256,
                DistFile.url,
                DistFile.uploaded_at,
                DistFile.deleted_at,
                Project.name,
            )
            .join(Project, Project.id == DistFile.project_id)
            .join(Subscription, Subscription.source_id == DistFile.source_id)
            .where(Subscription.repository_id == repo.id, DistFile.sha256 == sha256, DistFile.filename == base)
            .limit(1)
        ).first()
        if row is None:
            return None
        if day is None:
            if row.deleted_at is not None:
                return None
        else:
            cutoff = cutoff_of(day)
            if row.uploaded_at >= cutoff or (row.deleted_at is not None and row.deleted_at < cutoff):
                return None
        if indexer.source_type(session, row.source_id) == "curated-pypi":
            allowed = curated_specifier(session, row.source_id, row.name)
            if allowed is None or not matches(allowed, row.version):
                return None
        rule = rules_for(session, repo.id, row.name).blocked(row.version)
        if rule is not None:
            message = block_message(rule, row.name, row.version, repo.name)
            return ServedFile(row.sha256, OCTET_STREAM, 0, blocked=message)
        if kind == "file":
            if row.url is not None and not self.store.exists(row.sha256):
                return ServedFile(row.sha256, OCTET_STREAM, row.size, upstream=row.url, source_id=row.source_id)
            # An HTML upstream lists no sizes: until the row learns it, the stored blob knows.
            size = row.size or self.store.size(row.sha256)
            return ServedFile(row.sha256, OCTET_STREAM, size)
        if kind == ".metadata" and row.metadata_sha256:
            data = session.get(CoreMetadata, row.metadata_sha256)
            if data is not None:
                return ServedFile(row.metadata_sha256, OCTET_STREAM, len(data.data), data.data)
            if self.store.exists(row.metadata_sha256):  # stored as a blob before migration 0003
                return ServedFile(row.metadata_sha256, OCTET_STREAM, self.store.size(row.metadata_sha256))
            if row.url is not None:
                return ServedFile(
                    row.metadata_sha256, OCTET_STREAM, 0, upstream=row.url + ".metadata", source_id=row.source_id
                )
        if kind == ".asc" and row.signature_sha256:
            size = self.store.size(row.signature_sha256)
            return ServedFile(row.signature_sha256, "application/pgp-signature", size)
        return None
