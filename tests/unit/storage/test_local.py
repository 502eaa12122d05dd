"""The local blob store: staged writes become visible only when committed, under their sha256, and every read
goes through the store by digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from packyard.storage import BlobNotFound, LocalBlobStore

DATA = bytes(range(256)) * 4096  # 1 MiB: several of the store's chunks
DIGEST = hashlib.sha256(DATA).hexdigest()
MISSING = hashlib.sha256(b"never stored").hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def files_under(store: LocalBlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


# -- staged writes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [True, False])
def test_a_staged_blob_is_invisible_until_committed(store: LocalBlobStore, named: bool) -> None:
    staged = store.stage(named=named)
    staged.write(b"wheel bytes")
    with staged.open() as reader:  # readable while staged (the upload checks open the archive)
        assert reader.read() == b"wheel bytes"
    digest = hashlib.sha256(b"wheel bytes").hexdigest()
    assert staged.digest == digest and staged.size == len(b"wheel bytes")
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound):
        store.read(digest)
    if not named and staged.anonymous:
        assert list(store.staging.iterdir()) == []  # an anonymous file has no name to leave behind
    assert store.commit(staged) == digest
    assert store.read(digest) == b"wheel bytes" and store.verify(digest)
    assert list(store.staging.iterdir()) == []


def test_a_staged_reader_follows_the_writer(store: LocalBlobStore) -> None:
    """The mirror streams a download to clients from the staging file while it arrives."""
    staged = store.stage()
    staged.write(b"first ")
    with staged.open() as reader:
        assert reader.read() == b"first "
        staged.write(b"second")
        staged.flush()
        assert reader.read() == b"second"
    store.discard(staged)


@pytest.mark.parametrize("named", [True, False])
def test_a_committed_or_discarded_staged_blob_cannot_be_opened(store: LocalBlobStore, named: bool) -> None:
    committed = store.stage(named=named)
    committed.write(b"done")
    store.commit(committed)
    discarded = store.stage(named=named)
    discarded.write(b"dropped")
    store.discard(discarded)
    for staged in (committed, discarded):
        with pytest.raises(FileNotFoundError):
            staged.open()


@pytest.mark.parametrize("named", [True, False])
def test_committing_bytes_already_stored_keeps_one_copy(store: LocalBlobStore, named: bool) -> None:
    first = store.put_bytes(b"same")
    staged = store.stage(named=named)
    staged.write(b"same")
    assert store.commit(staged) == first
    assert list(store.staging.iterdir()) == []
    assert len(files_under(store)) == 1


@pytest.mark.parametrize("named", [True, False])
def test_a_discarded_blob_leaves_nothing(store: LocalBlobStore, named: bool) -> None:
    staged = store.stage(named=named)
    staged.write(b"rejected upload")
    store.discard(staged)
    assert files_under(store) == []
    assert not store.exists(hashlib.sha256(b"rejected upload").hexdigest())


def test_anonymous_staging_is_used_on_this_filesystem(store: LocalBlobStore) -> None:
    # ext4 on Linux (this project's machines) supports O_TMPFILE; the fallback is covered above either way.
    staged = store.stage(named=False)
    assert staged.anonymous
    store.discard(staged)


def test_put_bytes_and_delete(store: LocalBlobStore) -> None:
    digest = store.put_bytes(DATA)
    assert digest == DIGEST and store.exists(digest)
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound):
        store.read(digest)
    store.delete(digest)  # deleting what is not there does nothing
    store.delete("not-a-digest")


# -- reads -------------------------------------------------------------------------------------------------------


def test_reads_by_digest(store: LocalBlobStore) -> None:
    store.put_bytes(DATA)
    assert store.exists(DIGEST)
    assert store.size(DIGEST) == len(DATA)
    assert store.read(DIGEST) == DATA
    with store.open(DIGEST) as handle:
        handle.seek(1000)
        assert handle.read(10) == DATA[1000:1010]
    assert b"".join(store.stream(DIGEST)) == DATA
    with store.local_file(DIGEST) as file:
        assert file.read_bytes() == DATA
        assert files_under(store) == [file]  # the stored file itself: no copy to make or clean up
    assert files_under(store) == [file]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (0, 0),
        (0, 1),
        (10, 20),
        (256 * 1024 - 1, 256 * 1024 + 1),  # across a chunk boundary
        (len(DATA) - 5, None),
        (len(DATA) - 5, len(DATA) + 100),  # clipped to the size, like a slice
        (len(DATA), None),
        (len(DATA) + 10, None),
    ],
)
def test_stream_gives_a_byte_range(store: LocalBlobStore, start: int, end: int | None) -> None:
    store.put_bytes(DATA)
    assert b"".join(store.stream(DIGEST, start, end)) == DATA[start:end]


def test_stream_refuses_a_backwards_or_negative_range(store: LocalBlobStore) -> None:
    store.put_bytes(DATA)
    with pytest.raises(ValueError, match="Not a byte range"):
        store.stream(DIGEST, 10, 5)
    with pytest.raises(ValueError, match="Not a byte range"):
        store.stream(DIGEST, -1)


READS: dict[str, Callable[[LocalBlobStore, str], object]] = {
    "size": LocalBlobStore.size,
    "read": LocalBlobStore.read,
    "open": LocalBlobStore.open,
    "stream": LocalBlobStore.stream,  # not iterated: the call itself fails
    "local_file": lambda store, digest: store.local_file(digest).__enter__(),
}


@pytest.mark.parametrize("method", READS)
def test_a_missing_digest_raises_blob_not_found(store: LocalBlobStore, method: str) -> None:
    assert not store.exists(MISSING)
    with pytest.raises(BlobNotFound) as caught:
        READS[method](store, MISSING)
    assert caught.value.digest == MISSING and caught.value.status_code == 500
    assert str(caught.value) == (
        f"Blob `{MISSING}` is not in the blob store; if the database refers to it, the store lost it "
        "(restore `blobs/` from a backup, or upload the file again)."
    )


@pytest.mark.parametrize("digest", ["../../../etc/passwd", "/./../../../../etc/passwd", DIGEST.upper(), "", "ab"])
def test_a_string_that_is_not_a_digest_names_no_blob(store: LocalBlobStore, digest: str) -> None:
    """Digests also come from upstream indexes; none may reach a file outside the store."""
    store.put_bytes(DATA)
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound):
        store.read(digest)
    with pytest.raises(BlobNotFound), store.local_file(digest):
        pass
