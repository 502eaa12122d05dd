"""Find what a file URL serves: `/{repo}/latest/packages/{name}/{sha256}/{filename}[.metadata|.asc]`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from packyard.db import Database
from packyard.repository.models import CoreMetadata, DistFile, Subscription
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


class FileIndex:
    """Maps file URLs to what they serve. Entries are immutable (content-addressed) until subscriptions change."""

    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store
        self._cache: dict[tuple[int, str, str], ServedFile | None] = {}
        self._cached_bytes = 0

    def clear(self) -> None:
        self._cache.clear()
        self._cached_bytes = 0

    def cached(self, repo_id: int, sha256: str, filename: str) -> ServedFile | None | bool:
        """The cached answer (a file or None for "not here"), or False when `find` must be called."""
        return self._cache.get((repo_id, sha256, filename), False)

    def find(self, repo_id: int, sha256: str, filename: str) -> ServedFile | None:
        """Look a URL up in the database; call it off the event loop."""
        base, kind = filename, "file"
        for suffix in (".metadata", ".asc"):
            if filename.endswith(suffix):
                base, kind = filename.removesuffix(suffix), suffix
        found = None
        with self.db.session() as session:
            row = session.execute(
                select(DistFile.sha256, DistFile.size, DistFile.metadata_sha256, DistFile.signature_sha256)
                .join(Subscription, Subscription.source_id == DistFile.source_id)
                .where(Subscription.repository_id == repo_id, DistFile.sha256 == sha256, DistFile.filename == base)
                .limit(1)
            ).first()
            if row is not None:
                if kind == "file":
                    found = ServedFile(row.sha256, OCTET_STREAM, row.size)
                elif kind == ".metadata" and row.metadata_sha256:
                    data = session.get(CoreMetadata, row.metadata_sha256)
                    if data is not None:
                        found = ServedFile(row.metadata_sha256, OCTET_STREAM, len(data.data), data.data)
                    elif self.store.exists(row.metadata_sha256):  # stored as a blob before migration 0003
                        found = ServedFile(
                            row.metadata_sha256, OCTET_STREAM, self.store.path(row.metadata_sha256).stat().st_size
                        )
                elif kind == ".asc" and row.signature_sha256:
                    signature = self.store.path(row.signature_sha256)
                    found = ServedFile(row.signature_sha256, "application/pgp-signature", signature.stat().st_size)
        size = len(found.data) if found is not None and found.data is not None else 0
        if len(self._cache) >= MAX_CACHED or self._cached_bytes + size > MAX_CACHED_BYTES:
            self.clear()
        self._cache[(repo_id, sha256, filename)] = found
        self._cached_bytes += size
        return found
