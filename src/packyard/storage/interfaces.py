"""The blob store contract: blobs are named by their sha256 and read through the store, never through a path.

Callers stream, open, read, size and delete blobs by digest; a caller that really needs a file on this machine
(extracting a bundle, `sendfile` through `FileResponse`) asks `local_file` for one and keeps it only inside the
`with`. That keeps local paths out of callers, so an object-store implementation needs no change outside
`packyard/storage/`. Writes are staged: bytes go to a `StagedBlob`, hashed as they arrive, invisible until
`commit` names them by their sha256; `discard` leaves nothing behind.

The methods block. The local store's are a syscall or two (an `open`, a `stat`), so code on the event loop calls
them directly, as it called `open()` before. An object store's go over the network: its `local` is False, and the
hot path then leaves file reads to the routes, which run them in a thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol


class StagedBlob:
    """Bytes being written to a staging file, hashed as they arrive; invisible until the store commits them.

    Only the store that made it knows where the bytes are: callers `write`, `flush`, and `open` a reader of what
    was written so far (the upload checks open the archive, the mirror streams a download as it arrives)."""

    def __init__(self, file: Path, handle: BinaryIO, anonymous: bool = False) -> None:
        self._file = file  # the store's business: `/proc/self/fd/N` for an anonymous file
        self._handle = handle
        self.anonymous = anonymous
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.blake2_256 = hashlib.blake2b(digest_size=32)
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self.size += len(data)
        self.sha256.update(data)
        self.blake2_256.update(data)
        self.md5.update(data)

    def flush(self) -> None:
        """Hand what was written to the OS, so a reader opened by `open` (in this or another task) sees it."""
        self._handle.flush()

    def open(self) -> BinaryIO:
        """A new reader of the bytes written so far (flushed first), positioned at the start, independent of
        the writer. Raises FileNotFoundError once the blob was committed or discarded."""
        if self._handle.closed:  # and an anonymous file's `/proc/self/fd/N` may name another file by now
            raise FileNotFoundError(f"The staged blob {self.digest} was already committed or discarded.")
        self._handle.flush()
        return self._file.open("rb")

    @property
    def digest(self) -> str:
        return self.sha256.hexdigest()


class BlobStore(Protocol):
    """Blobs by sha256 digest. Reads of a digest with no committed blob raise `BlobNotFound`; a store that cannot
    be reached raises `StorageUnavailable`."""

    # Reads cost a syscall, not a round trip: the event loop may call them, and `local_file` copies nothing.
    local: bool

    # -- writes ------------------------------------------------------------------------------------------------

    def stage(self, named: bool = True) -> StagedBlob:
        """Start a blob; `named=False` when only this process reads it back before commit (an upload)."""

    def commit(self, staged: StagedBlob) -> str:
        """Make a staged blob durable and visible under its sha256 (at once, whole); returns the digest.
        Committing bytes already stored keeps the one copy."""

    def discard(self, staged: StagedBlob) -> None:
        """Drop a staged blob that will not be committed; nothing of it stays."""

    def put_bytes(self, data: bytes) -> str:
        """Store a small blob in one call; returns its sha256."""

    def delete(self, digest: str) -> None:
        """Remove a committed blob; deleting one that is not there does nothing."""

    # -- reads -------------------------------------------------------------------------------------------------

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int:
        """The blob's length in bytes."""

    def read(self, digest: str) -> bytes:
        """The whole blob, for small ones (metadata, signatures, files the hot path answers in one send)."""

    def open(self, digest: str) -> BinaryIO:
        """A readable, seekable binary stream of the blob; the caller closes it."""

    def stream(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes `[start:end]` of the blob in chunks (`end` exclusive and clipped to the size, as in a
        slice; None for the end). A missing blob raises `BlobNotFound` here, not on the first chunk."""

    def local_file(self, digest: str) -> AbstractContextManager[Path]:
        """A file on this machine holding the blob, valid inside the `with` and never to be written to.
        The local store yields the stored file itself; a remote store would download it to a temporary file
        and delete that on exit."""

    def redirect_url(self, digest: str, *, media_type: str, filename: str | None = None) -> str | None:
        """A short-lived URL the client may fetch the blob from itself (a presigned object URL), or None when
        Packyard serves the bytes."""
