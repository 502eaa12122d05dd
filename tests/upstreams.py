"""Real upstream peers for the mirror tests: a pypiserver, a second Packyard and a server of fixed pages (what a
hostile or broken index sends) on 127.0.0.1, each able to stop, restart on the same port, and say which requests
it received; a port that accepts and never answers; and the SQL that stands in for history (files uploaded on
earlier days)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

import httpx
import sqlalchemy as sa

from packyard.db import UTCDateTime
from tests.conftest import BIN, Server, _start, free_port, stop_process

STARTUP_SECONDS = 30
_PYPISERVER_REQUEST = re.compile(r"<LocalRequest: (GET|HEAD) https?://[^/]+(\S*)>")
_UVICORN_REQUEST = re.compile(r'"(GET|HEAD) (\S+) HTTP/1\.[01]" (\d{3})')


class Upstream(Protocol):
    """What the mirror tests need of an upstream index, whatever serves it."""

    @property
    def index(self) -> str: ...

    @property
    def port(self) -> int: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def requests(self) -> list[str]:
        """Paths of every GET/HEAD received since the first start, in order."""
        ...


@dataclass
class PypiServer:
    """pypiserver serving a folder of distributions, with sha256 link fragments and no fallback to PyPI.

    Its pages are HTML only (it ignores PEP 691 `Accept`), link to `/packages/<file>` with a root-relative
    URL, carry no `data-requires-python`, `upload-time` or `.metadata`, and send no ETag; `-v` logs each
    request line, which is how requests are counted."""

    packages: Path
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def index(self) -> str:
        return f"{self.url}/simple/"

    def start(self) -> None:
        command = [
            str(BIN / "pypi-server"),
            "run",
            "-v",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--hash-algo",
            "sha256",
            # Its default sends names it lacks to the public PyPI: the mirror must see a plain 404 instead.
            "--disable-fallback",
            "--authenticate",
            ".",
            "--passwords",
            ".",
            # Files are replaced in place by the hash-mismatch test; the cached-dir backend would miss that.
            "--backend",
            "simple-dir",
            str(self.packages),
        ]
        self.process = subprocess.Popen(command, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        _wait_ready(self.process, f"{self.url}/health", self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def restart(self) -> None:
        self.stop()
        self.start()

    def requests(self) -> list[str]:
        return [m.group(2) for m in _PYPISERVER_REQUEST.finditer(self.log_path.read_text(errors="replace"))]


@dataclass
class PackyardUpstream:
    """A second Packyard whose `pypi` repository is the upstream; its access log counts requests."""

    server: Server

    @property
    def index(self) -> str:
        return self.server.index

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.server.restart()

    def requests(self) -> list[str]:
        return server_requests(self.server)


def server_requests(server: Server) -> list[str]:
    """Paths of the GET/HEAD requests in a Packyard server's access log, in order."""
    return [m.group(2) for m in _UVICORN_REQUEST.finditer(server.log())]


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{url} did not answer within {STARTUP_SECONDS}s:\n{log_path.read_text(errors='replace')}")


@dataclass
class StaticUpstream:
    """An upstream that serves fixed pages, byte for byte, as a hostile or broken index would: `pages` maps a path
    (`/simple/<name>/`) to its Content-Type and body; any other path is a 404. Its own requests are recorded."""

    pages: dict[str, tuple[str, bytes]]
    server: ThreadingHTTPServer | None = None
    received: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    @property
    def index(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def start(self, port: int = 0) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.received.append(self.path)
                found = upstream.pages.get(self.path)
                content_type, body = found or ("text/plain", b"not found")
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # `received` is the log

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def restart(self) -> None:
        port = self.port
        self.stop()
        self.start(port)

    def requests(self) -> list[str]:
        return list(self.received)


class Peers:
    """Starts upstreams and mirrors for one scope and stops every one of them at its end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Upstream | Server] = []
        self.count = 0

    def _dir(self, name: str) -> Path:
        self.count += 1
        path = self.root / f"{self.count:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def pypiserver(self, dists: list[Path]) -> PypiServer:
        home = self._dir("pypiserver")
        packages = home / "packages"
        packages.mkdir()
        for dist in dists:
            (packages / dist.name).write_bytes(dist.read_bytes())
        upstream = PypiServer(packages, home / "pypiserver.log", free_port())
        self.started.append(upstream)
        upstream.start()
        return upstream

    def packyard(self, dists: list[Path], database_url: str = "") -> PackyardUpstream:
        server = _start(self._dir("packyard-upstream"), database_url)
        self.started.append(server)
        if dists:
            server.twine(*dists)
        return PackyardUpstream(server)

    def static(self, pages: dict[str, tuple[str, bytes]]) -> StaticUpstream:
        upstream = StaticUpstream(pages)
        self.started.append(upstream)
        upstream.start()
        return upstream

    def mirror(self, upstream_index: str, database_url: str = "", **settings: object) -> Server:
        """A Packyard whose `[mirror]` points at `upstream_index`; `settings` are other `[mirror]` keys."""
        env = {
            "PACKYARD_MIRROR_UPSTREAM": upstream_index,
            # Mirrored files are not uploads; keep the tests' 2 MiB upload limit out of the way.
            "PACKYARD_UPLOAD_MAX_FILE_SIZE": "100MiB",
            **{f"PACKYARD_MIRROR_{key.upper()}": str(value) for key, value in settings.items()},
        }
        server = _start(self._dir("mirror"), database_url, env)
        self.started.append(server)
        return server

    def close(self) -> None:
        for peer in reversed(self.started):
            peer.stop()


@dataclass
class Blackhole:
    """A listener that accepts connections and never answers: an upstream that hangs."""

    port: int
    accepted: int = 0

    def serve(self, listener: socket.socket, stop: threading.Event) -> None:
        held = []
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            held.append(conn)
        for conn in held:
            conn.close()


@contextmanager
def blackhole(port: int) -> Iterator[Blackhole]:
    """Listen on `port` (where a stopped upstream was) until the block ends, answering nothing."""
    hole = Blackhole(port)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    stop = threading.Event()
    thread = threading.Thread(target=hole.serve, args=(listener, stop), daemon=True)
    thread.start()
    try:
        yield hole
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# History. Every test uploads "today"; these statements move a file's upload (and the change-log entry that
# recorded it) to an earlier moment, which stands in for files uploaded on earlier days.

_files = sa.table("files", sa.column("filename"), sa.column("uploaded_at", UTCDateTime()))
_events = sa.table(
    "events", sa.column("kind"), sa.column("filename"), sa.column("at", UTCDateTime()), sa.column("id", sa.Integer)
)


def backdate(server: Server, filename: str, when: datetime, kind: str = "upload") -> None:
    """Set the stored upload time of `filename` (every source) to `when`, and its latest `kind` event likewise.

    `kind="yank"`/`"unyank"` moves only that change-log entry (the file's upload time stays)."""
    engine = sa.create_engine(server.sql_url)
    try:
        with engine.begin() as conn:
            if kind == "upload":
                updated = conn.execute(sa.update(_files).where(_files.c.filename == filename).values(uploaded_at=when))
                assert updated.rowcount, f"no stored file named {filename} in {server.sql_url}"
            latest = (
                sa.select(sa.func.max(_events.c.id))
                .where(_events.c.filename == filename, _events.c.kind == kind)
                .scalar_subquery()
            )
            conn.execute(sa.update(_events).where(_events.c.id == latest).values(at=when))
    finally:
        engine.dispose()
