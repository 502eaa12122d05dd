"""The local blob store: staged writes become visible only when committed, under their sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from packyard.storage import LocalBlobStore


@pytest.mark.parametrize("named", [True, False])
def test_a_staged_blob_is_invisible_until_committed(tmp_path: Path, named: bool) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    staged = store.stage(named=named)
    staged.write(b"wheel bytes")
    staged.handle.flush()
    assert staged.path.read_bytes() == b"wheel bytes"  # readable while staged (the upload checks read it)
    digest = hashlib.sha256(b"wheel bytes").hexdigest()
    assert not store.exists(digest)
    if not named and staged.anonymous:
        assert list(store.staging.iterdir()) == []  # an anonymous file has no name to leave behind
    assert store.commit(staged) == digest
    assert store.read(digest) == b"wheel bytes" and store.verify(digest)
    assert list(store.staging.iterdir()) == []


@pytest.mark.parametrize("named", [True, False])
def test_committing_bytes_already_stored_keeps_one_copy(tmp_path: Path, named: bool) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    first = store.put_bytes(b"same")
    staged = store.stage(named=named)
    staged.write(b"same")
    assert store.commit(staged) == first
    assert list(store.staging.iterdir()) == []


@pytest.mark.parametrize("named", [True, False])
def test_a_discarded_blob_leaves_nothing(tmp_path: Path, named: bool) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    staged = store.stage(named=named)
    staged.write(b"rejected upload")
    store.discard(staged)
    assert list(store.staging.iterdir()) == []
    assert not store.exists(hashlib.sha256(b"rejected upload").hexdigest())


def test_anonymous_staging_is_used_on_this_filesystem(tmp_path: Path) -> None:
    # ext4 on Linux (this project's machines) supports O_TMPFILE; the fallback is covered above either way.
    store = LocalBlobStore(tmp_path / "blobs")
    staged = store.stage(named=False)
    assert staged.anonymous
    store.discard(staged)
