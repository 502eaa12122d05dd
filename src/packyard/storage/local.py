"""Blobs in a local folder: `blobs/ab/cd/<sha256>`, written to a staging file, fsynced, then renamed."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from packyard.storage.interfaces import StagedBlob


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def stage(self) -> StagedBlob:
        # Staging lives under the same root so the final rename never crosses filesystems.
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="upload-")
        return StagedBlob(Path(name), os.fdopen(fd, "wb"))

    def commit(self, staged: StagedBlob) -> str:
        digest = staged.digest
        staged.handle.flush()
        os.fsync(staged.handle.fileno())
        staged.handle.close()
        target = self.path(digest)
        if target.exists():
            staged.path.unlink(missing_ok=True)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        self._fsync_dir(target.parent)
        return digest

    def put_bytes(self, data: bytes) -> str:
        staged = self.stage()
        staged.write(data)
        return self.commit(staged)

    def discard(self, staged: StagedBlob) -> None:
        if not staged.handle.closed:
            staged.handle.close()
        staged.path.unlink(missing_ok=True)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob; for `packyard` maintenance commands and tests."""
        h = hashlib.sha256()
        with self.path(digest).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest() == digest

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
