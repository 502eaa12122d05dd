"""The environments folder: one directory per key, a ready marker written last, and a lock file per key."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packyard.publishing.errors import EnvironmentLocked

READY = ".packyard-ready"  # JSON: key, built_at, inputs, timings; its presence means the build finished
LOCK_FILE = "requirements.lock"  # `uv pip freeze` of the built environment
REQUIREMENTS_FILE = "requirements.in"
CONSTRAINTS_FILE = "constraints.in"
OVERRIDES_FILE = "overrides.in"
KEY = re.compile(r"^[0-9a-f]{64}$")


class EnvironmentFolder:
    """Directories under `root`, named by key; `locked` serializes builders and removers across processes.

    A local cache, not the blob store: a node may delete and rebuild any of it, so its paths are meant to be
    used (uv builds into them, app processes run from them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.locks = root / ".locks"

    def directory(self, key: str) -> Path:
        return self.root / key

    def ready(self, key: str) -> dict[str, Any] | None:
        """The ready marker's contents, or None while the environment is missing or unfinished."""
        try:
            return json.loads((self.root / key / READY).read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def keys_on_disk(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if KEY.match(p.name))
        except FileNotFoundError:
            return []

    def try_lock(self, key: str, shared: bool = False) -> int | None:
        """The fd of the key's lock file, locked without waiting, or None when someone else holds it."""
        return self._lock(key, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)

    def lock(self, key: str) -> int:
        """The key's lock, exclusively, waiting for it (for removals run outside the event loop)."""
        fd = self._lock(key, fcntl.LOCK_EX)
        assert fd is not None
        return fd

    def _lock(self, key: str, mode: int) -> int | None:
        while True:
            self.locks.mkdir(parents=True, exist_ok=True)
            path = self.locks / f"{key}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                os.close(fd)
                return None
            # A removal unlinks the lock file after deleting; a lock on that old file protects nothing.
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    @contextlib.contextmanager
    def locked(self, key: str, wait: bool = True) -> Iterator[None]:
        fd = self.lock(key) if wait else self.try_lock(key)
        if fd is None:
            raise EnvironmentLocked(key)
        try:
            yield
        finally:
            os.close(fd)

    def write_ready(self, key: str, marker: dict[str, Any]) -> None:
        path = self.root / key / READY
        staging = path.with_name(f"{READY}.{uuid.uuid4().hex}")
        # No fsync: uv does not sync the files it installs, so a durable marker would not make them durable.
        # After a crash the worst case is a marker beside damaged files; `packyard env rm` clears it.
        with staging.open("w") as f:
            json.dump(marker, f, indent=1, sort_keys=True)
        os.replace(staging, path)

    def delete(self, key: str) -> None:
        """Remove an environment; call it holding the key's lock. The rename makes it vanish at once."""
        path = self.root / key
        if path.exists():
            trash = self.root / f".trash-{key[:12]}-{uuid.uuid4().hex[:8]}"
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.locks / f"{key}.lock").unlink()

    def sweep_trash(self) -> None:
        """Finish deletions a crash interrupted."""
        for path in self.root.glob(".trash-*"):
            shutil.rmtree(path, ignore_errors=True)


def size_of(path: Path) -> int:
    """Bytes of the files under `path` (hardlinks into uv's cache count in full)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total
