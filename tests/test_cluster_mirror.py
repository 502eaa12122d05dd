"""Two nodes on one PostgreSQL database mirror one upstream: a file asked of both at once is downloaded once."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.cluster import cluster

WHEEL = "slow_pkg-1.0-py3-none-any.whl"
CHUNKS = 10
DELAY = 0.1  # per chunk: the download takes a second, so every request arrives while it runs


class CountingUpstream:
    """A simple index of one project whose wheel trickles out slowly; `served` counts requests per path."""

    def __init__(self) -> None:
        self.wheel = os.urandom(CHUNKS * 64 * 1024)
        digest = hashlib.sha256(self.wheel).hexdigest()
        self.page = f'<html><body><a href="/files/{WHEEL}#sha256={digest}">{WHEEL}</a></body></html>'.encode()
        self.served: Counter[str] = Counter()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.served[self.path] += 1
                if self.path == "/simple/slow-pkg/":
                    return self._send(upstream.page, "text/html")
                if self.path == f"/files/{WHEEL}":
                    return self._send(upstream.wheel, "application/octet-stream", slow=True)
                self._send(b"not found", "text/plain", status=404)

            def _send(self, body: bytes, content_type: str, status: int = 200, slow: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = len(body) // CHUNKS if slow else len(body)
                for start in range(0, len(body), step):
                    self.wfile.write(body[start : start + step])
                    self.wfile.flush()
                    if slow:
                        time.sleep(DELAY)

            def log_message(self, format: str, *args: object) -> None:
                pass  # `served` is the log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def index(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[CountingUpstream]:
    served = CountingUpstream()
    try:
        yield served
    finally:
        served.stop()


def test_two_nodes_download_an_upstream_file_once(tmp_path: Path, upstream: CountingUpstream) -> None:
    with cluster(tmp_path, nodes=0) as group:
        for _ in range(2):
            group.add_node({"PACKYARD_MIRROR_UPSTREAM": upstream.index})
        pages = [httpx.get(f"{node.index}slow-pkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
                 for node in group.nodes]  # fmt: skip
        assert [page.status_code for page in pages] == [200, 200], [page.text for page in pages]
        (file,) = pages[0].json()["files"]
        path = httpx.URL(file["url"]).path if "://" in file["url"] else None
        urls = [str(httpx.URL(f"{node.index}slow-pkg/").join(path or file["url"])) for node in group.nodes]

        def fetch(i: int) -> bytes:
            response = httpx.get(urls[i % 2], timeout=60)
            assert response.status_code == 200, response.text
            return response.content

        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(fetch, range(8)))  # four requests on each node, all while the download runs
        assert all(body == upstream.wheel for body in bodies)
        assert upstream.served[f"/files/{WHEEL}"] == 1, upstream.served
        # And later requests, on either node, come from the shared store.
        assert all(httpx.get(url, timeout=30).content == upstream.wheel for url in urls)
        assert upstream.served[f"/files/{WHEEL}"] == 1, upstream.served
