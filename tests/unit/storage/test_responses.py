"""A blob served as a file: sendfile, Range and HEAD from Starlette, the local file released after sending."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from packyard.storage import BlobNotFound, BlobResponse, LocalBlobStore

DATA = b"0123456789" * 1000


class CountingStore(LocalBlobStore):
    """Counts the local files handed out and given back, as a remote store's temporary copies would be."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lent = self.returned = 0

    @contextlib.contextmanager
    def local_file(self, digest: str) -> Iterator[Path]:
        with super().local_file(digest) as file:
            self.lent += 1
            try:
                yield file
            finally:
                self.returned += 1


class Client:
    """httpx over the ASGI app, one request at a time."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://packyard") as client:
                return await client.request(method, url, headers=headers)

        return asyncio.run(send())

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", url, headers)

    def head(self, url: str) -> httpx.Response:
        return self.request("HEAD", url)


@pytest.fixture
def served(tmp_path: Path) -> tuple[CountingStore, str, Client]:
    store = CountingStore(tmp_path / "blobs")
    digest = store.put_bytes(DATA)

    async def blob(request: Request) -> Response:
        return BlobResponse(
            store, request.path_params["digest"], media_type="application/octet-stream", headers={"etag": "x"}
        )

    app = Starlette(routes=[Route("/{digest}", blob, methods=["GET", "HEAD"])])
    return store, digest, Client(app)


def test_a_blob_is_served_whole_with_its_headers(served: tuple[CountingStore, str, Client]) -> None:
    store, digest, client = served
    response = client.get(f"/{digest}")
    assert response.status_code == 200 and response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["etag"] == "x" and response.headers["accept-ranges"] == "bytes"
    assert store.lent == store.returned == 1


def test_a_range_and_a_head(served: tuple[CountingStore, str, Client]) -> None:
    store, digest, client = served
    response = client.get(f"/{digest}", headers={"range": "bytes=10-19"})
    assert response.status_code == 206 and response.content == DATA[10:20]
    assert response.headers["content-range"] == f"bytes 10-19/{len(DATA)}"
    head = client.head(f"/{digest}")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(DATA))
    assert store.lent == store.returned == 2


def test_a_missing_blob_fails_when_the_response_is_made(served: tuple[CountingStore, str, Client]) -> None:
    store, _, client = served
    with pytest.raises(BlobNotFound):
        client.get(f"/{'0' * 64}")
    assert store.lent == store.returned == 0
