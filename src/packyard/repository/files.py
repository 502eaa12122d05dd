"""Find the blob behind a file URL `/{repo}/latest/packages/{name}/{sha256}/{filename}[.metadata|.asc]`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from packyard.db import Database
from packyard.repository.models import DistFile, Subscription

MAX_CACHED = 100_000


@dataclass(frozen=True)
class ServedFile:
    digest: str
    media_type: str


class FileIndex:
    """Maps file URLs to blobs. Entries are immutable (content-addressed) until subscriptions change."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[tuple[int, str, str], ServedFile | None] = {}

    def clear(self) -> None:
        self._cache.clear()

    def find(self, repo_id: int, sha256: str, filename: str) -> ServedFile | None:
        key = (repo_id, sha256, filename)
        if key in self._cache:
            return self._cache[key]
        base, kind = filename, "file"
        for suffix in (".metadata", ".asc"):
            if filename.endswith(suffix):
                base, kind = filename.removesuffix(suffix), suffix
        with self.db.session() as session:
            row = session.scalar(
                select(DistFile)
                .join(Subscription, Subscription.source_id == DistFile.source_id)
                .where(Subscription.repository_id == repo_id, DistFile.sha256 == sha256, DistFile.filename == base)
                .limit(1)
            )
            found = None
            if row is not None:
                if kind == "file":
                    found = ServedFile(row.sha256, "application/octet-stream")
                elif kind == ".metadata" and row.metadata_sha256:
                    found = ServedFile(row.metadata_sha256, "application/octet-stream")
                elif kind == ".asc" and row.signature_sha256:
                    found = ServedFile(row.signature_sha256, "application/pgp-signature")
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = found
        return found
