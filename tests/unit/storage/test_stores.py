"""The BlobStore contract, run against every store: the local folder and an S3 bucket (moto's server on loopback).
Staged writes become visible only whole, under their sha256; reads go by digest; a Range is a byte slice."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from packyard.storage import BlobNotFound, BlobResponse, BlobStore, LocalBlobStore, S3BlobStore, StorageUnavailable
from tests.s3 import MotoS3

DATA = bytes(range(256)) * 4096  # 1 MiB: several chunks
DIGEST = hashlib.sha256(DATA).hexdigest()
MISSING = hashlib.sha256(b"never stored").hexdigest()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    s3: S3BlobStore = request.getfixturevalue("s3_store")
    return s3


@pytest.mark.parametrize("named", [True, False])
def test_a_staged_blob_is_invisible_until_committed(store: BlobStore, named: bool) -> None:
    staged = store.stage(named=named)
    staged.write(b"wheel ")
    with staged.open() as reader:  # the upload checks and the mirror read what is staged
        assert reader.read() == b"wheel "
        staged.write(b"bytes")
        staged.flush()
        assert reader.read() == b"bytes"
    digest = hashlib.sha256(b"wheel bytes").hexdigest()
    assert not store.exists(digest)
    assert store.commit(staged) == digest
    assert store.read(digest) == b"wheel bytes"
    with pytest.raises(FileNotFoundError):
        staged.open()


def test_commit_discard_put_and_delete(store: BlobStore) -> None:
    first = store.put_bytes(b"same")
    staged = store.stage()
    staged.write(b"same")
    assert store.commit(staged) == first
    dropped = store.stage()
    dropped.write(b"rejected")
    store.discard(dropped)
    assert not store.exists(hashlib.sha256(b"rejected").hexdigest())
    store.delete(first)
    assert not store.exists(first)
    store.delete(first)  # deleting what is not there does nothing
    store.delete("not-a-digest")


def test_reads_by_digest(store: BlobStore) -> None:
    assert store.put_bytes(DATA) == DIGEST
    assert store.exists(DIGEST) and store.size(DIGEST) == len(DATA)
    assert store.read(DIGEST) == DATA
    with store.open(DIGEST) as handle:
        handle.seek(300_000)
        assert handle.read(10) == DATA[300_000:300_010]
        handle.seek(-5, 2)
        assert handle.read() == DATA[-5:]
    assert b"".join(store.stream(DIGEST)) == DATA
    with store.local_file(DIGEST) as file:
        assert file.read_bytes() == DATA
    if not store.local:
        assert not file.exists()  # the downloaded copy is gone after the `with`


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 0), (0, 1), (10, 20), (262143, 262145), (len(DATA) - 5, len(DATA) + 100), (len(DATA), None)],
)
def test_stream_gives_a_byte_range(store: BlobStore, start: int, end: int | None) -> None:
    store.put_bytes(DATA)
    assert b"".join(store.stream(DIGEST, start, end)) == DATA[start:end]


@pytest.mark.parametrize("digest", [MISSING, "../../../etc/passwd", DIGEST.upper(), ""])
def test_a_missing_or_invalid_digest_raises_blob_not_found(store: BlobStore, digest: str) -> None:
    store.put_bytes(DATA)
    assert not store.exists(digest)
    for read in (store.size, store.read, store.open, store.stream):
        with pytest.raises(BlobNotFound):
            read(digest)
    with pytest.raises(BlobNotFound), store.local_file(digest):
        pass


def serve(store: BlobStore, method: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def blob(request: Request) -> Response:
        return BlobResponse(store, DIGEST, media_type="application/zip", headers={"etag": '"e"'}, filename="a.whl")

    app = Starlette(routes=[Route("/blob", blob, methods=["GET", "HEAD"])])

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://packyard") as client:
            return await client.request(method, "/blob", headers=headers)

    return asyncio.run(send())


def test_a_blob_response_whole_ranged_and_head(store: BlobStore) -> None:
    store.put_bytes(DATA)
    whole = serve(store, "GET")
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["content-length"] == str(len(DATA)) and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == '"e"' and whole.headers["content-type"] == "application/zip"
    for wanted, expected in [("bytes=10-19", (10, 20)), ("bytes=-5", (len(DATA) - 5, len(DATA)))]:
        part = serve(store, "GET", {"range": wanted})
        assert part.status_code == 206 and part.content == DATA[slice(*expected)]
        assert part.headers["content-range"] == f"bytes {expected[0]}-{expected[1] - 1}/{len(DATA)}"
    assert serve(store, "GET", {"range": f"bytes={len(DATA)}-"}).status_code == 416
    head = serve(store, "HEAD")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(DATA))


def test_a_redirect_to_a_presigned_url(s3_store: S3BlobStore) -> None:
    s3_store.put_bytes(DATA)
    s3_store.redirect = True
    answer = serve(s3_store, "GET")
    assert answer.status_code == 307 and answer.headers["cache-control"] == "no-store"
    fetched = httpx.get(answer.headers["location"], headers={"range": "bytes=0-9"})
    assert fetched.status_code == 206 and fetched.content == DATA[:10]
    assert httpx.get(answer.headers["location"]).content == DATA


def test_a_blob_is_put_with_its_sha256_for_the_server_to_check(s3_store: S3BlobStore, moto_s3: MotoS3) -> None:
    """The PUT carries the digest the staged bytes were hashed to: AWS and MinIO refuse a body that does not
    match it (moto stores the checksum without checking it, so here we check that it was sent)."""
    s3_store.put_bytes(DATA)
    head = moto_s3.client().head_object(Bucket=s3_store.bucket, Key=f"pk/blobs/{DIGEST}", ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == DIGEST
    assert list(s3_store.staging.iterdir()) == []


def test_an_outage_is_a_503_and_the_store_recovers(s3_store: S3BlobStore, moto_s3: MotoS3) -> None:
    s3_store.put_bytes(DATA)
    moto_s3.stop()
    try:
        staged = s3_store.stage()
        staged.write(b"during the outage")
        for call in (lambda: s3_store.read(DIGEST), lambda: s3_store.exists(DIGEST), lambda: s3_store.commit(staged)):
            with pytest.raises(StorageUnavailable) as caught:
                call()
            assert caught.value.status_code == 503
            assert str(caught.value).startswith(f"The blob store is unavailable (bucket `{s3_store.bucket}`: ")
            assert str(caught.value).endswith("); try again shortly.")
        assert list(s3_store.staging.iterdir()) == []  # the failed commit left no staging file either
    finally:
        moto_s3.start()
    assert s3_store.read(DIGEST) == DATA
    assert moto_s3.keys(s3_store.bucket) == [f"pk/blobs/{DIGEST}"]
