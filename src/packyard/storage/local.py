"""Blobs in a local folder: `blobs/ab/cd/<sha256>`, written to a staging file, fsynced, then renamed."""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from pathlib import Path

from packyard.storage.interfaces import StagedBlob

_TMPFILE = getattr(os, "O_TMPFILE", 0)
_AT_FDCWD, _AT_SYMLINK_FOLLOW = -100, 0x400
_libc = ctypes.CDLL(None, use_errno=True) if _TMPFILE else None


def _link_anonymous(proc_path: Path, target: Path) -> None:
    """linkat(AT_SYMLINK_FOLLOW) on `/proc/self/fd/N`: how an O_TMPFILE file gets a name without privileges.
    `os.link` cannot do it: CPython calls link(2) there, which links the /proc symlink itself (EXDEV)."""
    assert _libc is not None
    if _libc.linkat(_AT_FDCWD, bytes(proc_path), _AT_FDCWD, bytes(target), _AT_SYMLINK_FOLLOW) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(target))


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._anonymous = self._can_link_anonymous()

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def stage(self, named: bool = True) -> StagedBlob:
        """A staging file under the same root, so the final rename never crosses filesystems. `named=False`
        asks for an anonymous one (Linux O_TMPFILE) where the platform has it: nothing to create in a busy
        directory (the cost of a name grows with the directory's history), nothing left behind by a crash.
        Its `path` (`/proc/self/fd/N`) is then valid only in this process, while the blob is staged."""
        if not named and self._anonymous:
            fd = os.open(self.staging, _TMPFILE | os.O_WRONLY, 0o600)
            return StagedBlob(Path(f"/proc/self/fd/{fd}"), os.fdopen(fd, "wb"), anonymous=True)
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="upload-")
        return StagedBlob(Path(name), os.fdopen(fd, "wb"))

    def commit(self, staged: StagedBlob) -> str:
        digest = staged.digest
        staged.handle.flush()
        os.fsync(staged.handle.fileno())
        target = self.path(digest)
        if target.exists():
            self.discard(staged)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        if staged.anonymous:
            try:  # gives the anonymous file its name; the fd must still be open
                _link_anonymous(staged.path, target)
            except FileExistsError:  # the same bytes were committed meanwhile
                pass
            staged.handle.close()
        else:
            staged.handle.close()
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
        if not staged.anonymous:  # an anonymous file is gone once closed
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
