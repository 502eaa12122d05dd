"""Blobs in a local folder: `blobs/ab/cd/<sha256>`, written to a staging file, fsynced, then renamed."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from packyard.storage.errors import BlobNotFound
from packyard.storage.interfaces import StagedBlob

_TMPFILE = getattr(os, "O_TMPFILE", 0)
_AT_FDCWD, _AT_SYMLINK_FOLLOW = -100, 0x400
_libc = ctypes.CDLL(None, use_errno=True) if _TMPFILE else None
_DIGEST = re.compile(r"[0-9a-f]{64}")
CHUNK = 256 * 1024


def _link_anonymous(proc_path: Path, target: Path) -> None:
    """linkat(AT_SYMLINK_FOLLOW) on `/proc/self/fd/N`: how an O_TMPFILE file gets a name without privileges.
    `os.link` cannot do it: CPython calls link(2) there, which links the /proc symlink itself (EXDEV)."""
    assert _libc is not None
    if _libc.linkat(_AT_FDCWD, bytes(proc_path), _AT_FDCWD, bytes(target), _AT_SYMLINK_FOLLOW) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(target))


class LocalBlobStore:
    """The `BlobStore` on a local filesystem. Reads are plain file opens: nothing is cached, and no thread."""

    local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._anonymous = self._can_link_anonymous()

    def _file(self, digest: str) -> Path:
        """Where a blob lives (or would). Digests also come from upstream indexes: anything but 64 lowercase hex
        digits names no blob, so no string can reach a file outside the store (`/.` or `..` in a digest would)."""
        if _DIGEST.fullmatch(digest) is None:
            raise BlobNotFound(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def stage(self, named: bool = True) -> StagedBlob:
        """A staging file under the same root, so the final rename never crosses filesystems. `named=False`
        asks for an anonymous one (Linux O_TMPFILE) where the platform has it: nothing to create in a busy
        directory (the cost of a name grows with the directory's history), nothing left behind by a crash.
        Its file (`/proc/self/fd/N`) is then readable only in this process, while the blob is staged."""
        if not named and self._anonymous:
            fd = os.open(self.staging, _TMPFILE | os.O_WRONLY, 0o600)
            return StagedBlob(Path(f"/proc/self/fd/{fd}"), os.fdopen(fd, "wb"), anonymous=True)
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="upload-")
        return StagedBlob(Path(name), os.fdopen(fd, "wb"))

    def commit(self, staged: StagedBlob) -> str:
        digest = staged.digest
        staged._handle.flush()
        os.fsync(staged._handle.fileno())
        target = self._file(digest)
        if target.exists():
            self.discard(staged)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        if staged.anonymous:
            try:  # gives the anonymous file its name; the fd must still be open
                _link_anonymous(staged._file, target)
            except FileExistsError:  # the same bytes were committed meanwhile
                pass
            staged._handle.close()
        else:
            staged._handle.close()
            os.replace(staged._file, target)
        self._fsync_dir(target.parent)
        return digest

    def put_bytes(self, data: bytes) -> str:
        staged = self.stage()
        staged.write(data)
        return self.commit(staged)

    def discard(self, staged: StagedBlob) -> None:
        if not staged._handle.closed:
            staged._handle.close()
        if not staged.anonymous:  # an anonymous file is gone once closed
            staged._file.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(BlobNotFound):
            self._file(digest).unlink(missing_ok=True)

    def exists(self, digest: str) -> bool:
        try:
            return self._file(digest).is_file()
        except BlobNotFound:
            return False

    def size(self, digest: str) -> int:
        try:
            return os.stat(self._file(digest)).st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(digest) from exc

    def read(self, digest: str) -> bytes:
        try:
            with open(self._file(digest), "rb") as handle:
                return handle.read()
        except FileNotFoundError as exc:
            raise BlobNotFound(digest) from exc

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self._file(digest), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(digest) from exc

    def stream(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"Not a byte range of a blob: start {start}, end {end}")
        handle = self.open(digest)  # here, so a missing blob fails before the first chunk is asked for
        return self._chunks(handle, start, end)

    @staticmethod
    def _chunks(handle: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            left = end - start if end is not None else None
            while left is None or left > 0:
                chunk = handle.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    @contextlib.contextmanager
    def local_file(self, digest: str) -> Iterator[Path]:
        """The stored file itself: blobs are never rewritten, so there is nothing to copy or clean up."""
        file = self._file(digest)
        if not file.is_file():
            raise BlobNotFound(digest)
        yield file

    def redirect_url(self, digest: str, *, media_type: str, filename: str | None = None) -> str | None:
        return None

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob; for `packyard` maintenance commands and tests."""
        h = hashlib.sha256()
        for chunk in self.stream(digest):
            h.update(chunk)
        return h.hexdigest() == digest

    def _can_link_anonymous(self) -> bool:
        """Whether this filesystem and kernel give an O_TMPFILE file a name (ext4, xfs, btrfs, tmpfs do)."""
        if not _TMPFILE:
            return False
        probe = self.staging / f"probe-{os.getpid()}"
        try:
            fd = os.open(self.staging, _TMPFILE | os.O_WRONLY, 0o600)
            try:
                _link_anonymous(Path(f"/proc/self/fd/{fd}"), probe)
            finally:
                os.close(fd)
            probe.unlink()
            return True
        except OSError:
            return False

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
