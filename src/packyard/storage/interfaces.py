"""The blob store contract: stage bytes while hashing them, then commit them under their sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, Protocol


class StagedBlob:
    """Bytes being written to a staging file, hashed as they arrive; invisible until committed."""

    def __init__(self, path: Path, handle: BinaryIO, anonymous: bool = False) -> None:
        self.path = path
        self.handle = handle
        self.anonymous = anonymous
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.blake2_256 = hashlib.blake2b(digest_size=32)
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.size += len(data)
        self.sha256.update(data)
        self.blake2_256.update(data)
        self.md5.update(data)

    @property
    def digest(self) -> str:
        return self.sha256.hexdigest()


class BlobStore(Protocol):
    def stage(self, named: bool = True) -> StagedBlob:
        """Open a new staging file; `named=False` when nothing outside this process needs its path."""

    def commit(self, staged: StagedBlob) -> str:
        """Make a staged blob durable and visible under its sha256; returns the digest."""

    def put_bytes(self, data: bytes) -> str:
        """Store a small blob in one call; returns its sha256."""

    def discard(self, staged: StagedBlob) -> None:
        """Drop a staged blob that will not be committed."""

    def exists(self, digest: str) -> bool: ...

    def path(self, digest: str) -> Path:
        """The local file holding a committed blob."""

    def read(self, digest: str) -> bytes: ...
