"""Do the hand-written parts earn their place? Each one against the library that would replace it, in one run.

- `hot_path`: simple pages and small files answered by `serving/hot_path.py` (raw ASGI) against the same
  requests answered by the FastAPI routes behind it (the same server with the hot path passing everything on).
- `multipart`: `upload/multipart.py`'s whole-body splitter (`_parse_whole`) against python-multipart's
  `MultipartParser` driving the same callbacks, on twine-shaped bodies, in-process.
- `proxy`: `proxy/http.py`'s HTTP/1.1 client against httpx.AsyncClient (a keep-alive pool to the same loopback
  app), both in one server process.
- `static`: `sites/files.py` against Starlette's `StaticFiles` (`FileResponse`), both in one server process.

Servers run under uvicorn with Packyard's settings (httptools, uvloop) pinned to core 0; wrk runs on core 1 (the
proxy's app too). Variants alternate round by round, and each figure is the median of the rounds. Run with
`make bench-handmade` or `.venv-test/bin/python bench/handmade.py [--part NAME]`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import socket
import statistics
import sys
import time
import types
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import uvicorn
from corpus import ensure_corpus, wheel_bytes
from servers import start_packyard
from starlette.staticfiles import StaticFiles
from uploads import form_fields
from util import (
    BENCH,
    CLIENT_CORE,
    HOST,
    SERVER_CORE,
    WORK,
    OtherLoad,
    _tree_seconds,
    clean_env,
    free_port,
    git_commit,
    log,
    pinned,
    run,
    spawn,
    wait_http,
)
from wrk import ACCEPT, parse

from packyard.app import create_app
from packyard.config import load_settings
from packyard.http_errors import install_reason_phrases, send_error
from packyard.publishing.proxy.headers import HOP_BY_HOP, app_cookies, response_headers
from packyard.publishing.proxy.http import _DROP_REQUEST, ContentProxy, _Target
from packyard.publishing.runtime.limits import Limits
from packyard.publishing.sites import files
from packyard.repository.serving import hot_path
from packyard.repository.upload import multipart

PARTS = ("hot_path", "multipart", "proxy", "static")
HERE = Path(__file__).resolve()
DATA = WORK / "handmade"
CORPUS_SIZE = 500
GUID = "0b1e5e6a-6d1b-4c1e-9f53-6b1d8f3d2c10"


# ---------------------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Row:
    part: str
    job: str
    variant: str
    rounds: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rounds)


def wrk_round(url: str, pid: int, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    """One wrk round on the client core: requests/s, p50, the server's CPU per request and the other load."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    meter = OtherLoad(pid)
    cpu = _tree_seconds(pid)
    output = run(pinned(CLIENT_CORE, [*cmd, url]), timeout=seconds + 60).stdout
    cpu = _tree_seconds(pid) - cpu
    other = meter.cores()
    rps, p50, _p99, errors = parse(output)
    if errors:
        raise RuntimeError(f"{errors} failed requests to {url}:\n{output}")
    done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": p50, "cpu_us": cpu / done * 1e6, "other": other}


def alternate(
    part: str,
    job: str,
    urls: dict[str, tuple[str, int]],
    args: argparse.Namespace,
    headers: dict[str, str] | None = None,
) -> list[Row]:
    """wrk against each variant's URL in turn, the order flipped every round; a short warm-up first."""
    rows = {variant: Row(part, job, variant) for variant in urls}
    for url, pid in urls.values():
        wrk_round(url, pid, args.connections, 2, headers or {})
    for rep in range(args.reps):
        order = list(urls) if rep % 2 == 0 else list(reversed(urls))
        for variant in order:
            url, pid = urls[variant]
            rows[variant].rounds.append(wrk_round(url, pid, args.connections, args.duration, headers or {}))
            r = rows[variant].rounds[-1]
            log(f"{part} {job} {variant}: {r['rps']:,.0f} req/s, {r['cpu_us']:.0f} us CPU/req, other {r['other']:.2f}")
    return list(rows.values())


def server(name: str, *argv: str, port: int, core: int = SERVER_CORE, check: str = "/") -> Any:
    env = clean_env(WORK / "home" / "packyard", PACKYARD_SERVER_ACCESS_LOG="false")
    cmd = [sys.executable, str(HERE), "--serve", *argv, "--port", str(port)]
    service = spawn(name, pinned(core, cmd), DATA / f"{name}.log", env)
    wait_http(service, f"http://{HOST}:{port}{check}")
    return service


def uvicorn_run(app: Any, port: int, keep_alive: int = 5, uds: str = "") -> None:
    """As `packyard run` serves (packyard/server.py), minus the access log; with `uds`, on that Unix socket too."""
    install_reason_phrases()
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        access_log=False,
        log_level="warning",
        proxy_headers=True,
        server_header=False,
        http="httptools",
        loop="uvloop",
        ws="wsproto",
        timeout_keep_alive=keep_alive,
    )
    sockets = [config.bind_socket()]
    if uds:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(uds)
        unix.listen(1024)
        sockets.append(unix)
    uvicorn.Server(config).run(sockets=sockets)


# ---------------------------------------------------------------------------------------------------------------
# 1. The hot path against the FastAPI routes


async def _fastapi_only(self: hot_path.HotPathApp, scope: Any, receive: Any, send: Any) -> None:
    await self.fallback(scope, receive, send)


def serve_hot_path(data: str, variant: str, port: int) -> None:
    if variant == "route":  # every request goes to the FastAPI app, whose routes answer the same URLs
        hot_path.HotPathApp.__call__ = _fastapi_only  # type: ignore[method-assign]
    uvicorn_run(create_app(load_settings(Path(data))), port)


def bench_hot_path(args: argparse.Namespace) -> list[Row]:
    corpus = ensure_corpus(CORPUS_SIZE)
    loader = start_packyard(corpus, fresh=False, concurrency=4, staged=False)  # kept under bench/.work/packyard
    data = Path(loader.service.log_path).parent
    loader.stop()
    ports = {"hand-written": free_port(), "FastAPI route": free_port()}
    services = {
        variant: server(
            f"hot-path-{variant.split()[0]}",
            "hot_path",
            "--data",
            str(data),
            "--variant",
            "route" if variant == "FastAPI route" else "hand",
            port=port,
            check="/__ping__",
        )
        for variant, port in ports.items()
    }
    try:
        page = "/pypi/latest/simple/bench-p00000/"
        listing = httpx.get(f"http://{HOST}:{ports['hand-written']}{page}", headers={"Accept": ACCEPT["json"]})
        file_url = str(httpx.URL(page).join(listing.raise_for_status().json()["files"][0]["url"]))
        for variant, port in ports.items():  # both answer the same thing
            for path in (page, file_url):
                response = httpx.get(f"http://{HOST}:{port}{path}", headers={"Accept": ACCEPT["json"]})
                if response.status_code != 200:
                    raise RuntimeError(f"{variant}: {path} answered {response.status_code}")
        size = len(httpx.get(f"http://{HOST}:{ports['hand-written']}{file_url}").content)
        rows = []
        for job, path, headers in (
            ("project page, JSON", page, {"Accept": ACCEPT["json"]}),
            (f"wheel file, {size:,} bytes", file_url, {}),
        ):
            urls = {v: (f"http://{HOST}:{ports[v]}{path}", services[v].process.pid) for v in ports}
            rows += alternate("hot_path", job, urls, args, headers)
        return rows
    finally:
        for service in services.values():
            service.stop()


# ---------------------------------------------------------------------------------------------------------------
# 2. The small-body multipart splitter against python-multipart


class _CountingBlob:
    size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


class _NullStore:
    """Staging costs the same whichever parser runs; only the parsing is measured."""

    def stage(self, named: bool = True) -> _CountingBlob:
        return _CountingBlob()


def twine_body(name: str, version: str, wheel: bytes, filename: str) -> tuple[bytes, bytes]:
    """A body as twine sends it (requests-toolbelt's encoder): its metadata fields, then the file."""
    boundary = b"a7f1c3e2d4b5968778695a4b3c2d1e0f"
    fields = form_fields(Path(filename), wheel)
    fields.update(
        summary=f"The {name} package, for the benchmark",
        description="# Heading\n\n" + "A paragraph of the long description, as READMEs have. " * 40,
        description_content_type="text/markdown",
        author="Packyard Bench",
        author_email="bench@example.invalid",
        license="MIT",
        requires_python=">=3.9",
        md5_digest="0" * 32,
        blake2_256_digest="0" * 64,
        comment="",
    )
    out = []
    for key, value in [*fields.items(), *(("classifiers", c) for c in ("Programming Language :: Python :: 3",) * 6)]:
        out.append(
            b'--%b\r\nContent-Disposition: form-data; name="%b"\r\n\r\n%b\r\n'
            % (boundary, key.encode(), value.encode())
        )
    out.append(
        b'--%b\r\nContent-Disposition: form-data; name="content"; filename="%b"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n%b\r\n--%b--\r\n"
        % (boundary, filename.encode(), wheel, boundary)
    )
    return b"".join(out), boundary


def _whole(body: bytes, boundary: bytes) -> multipart._Reader:
    reader = multipart._Reader(_NullStore(), 1 << 30)  # type: ignore[arg-type]
    multipart._parse_whole(body, boundary, reader)
    return reader


def _streaming(body: bytes, boundary: bytes) -> multipart._Reader:
    reader = multipart._Reader(_NullStore(), 1 << 30)  # type: ignore[arg-type]
    parser = multipart._streaming_parser(boundary, reader)
    for i in range(0, len(body), 65536):  # as the ASGI server hands the body over
        parser.write(body[i : i + 65536])
    parser.finalize()
    return reader


def bench_multipart(args: argparse.Namespace) -> list[Row]:
    small_name, small = wheel_bytes("bench-multipart", "1.0.0")
    bodies = {
        f"twine body, {len(small):,}-byte wheel": twine_body("bench-multipart", "1.0.0", small, small_name),
        "twine body, 480 KiB wheel": twine_body("bench-multipart", "1.0.0", os.urandom(480 * 1024), small_name),
        "twine body, 900 KiB wheel": twine_body("bench-multipart", "1.0.0", os.urandom(900 * 1024), small_name),
    }
    variants: dict[str, Callable[[bytes, bytes], multipart._Reader]] = {
        "hand-written (_parse_whole)": _whole,
        "python-multipart (MultipartParser)": _streaming,
    }
    rows = []
    for job, (body, boundary) in bodies.items():
        job = f"{job} ({len(body):,} bytes)"
        seen = {name: fn(body, boundary).parts for name, fn in variants.items()}
        a, b = seen.values()
        assert a.fields == b.fields and a.content_filename == b.content_filename, "the parsers disagree"
        assert a.content is not None and b.content is not None and a.content.size == b.content.size
        job_rows = {name: Row("multipart", job, name) for name in variants}
        # Enough calls per round for ~0.3 s with the slower parser.
        for fn in variants.values():  # warm-up
            for _ in range(5):
                fn(body, boundary)
        started = time.perf_counter()
        for _ in range(5):
            _streaming(body, boundary)
        calls = max(20, int(0.3 / max((time.perf_counter() - started) / 5, 1e-6)))
        for rep in range(args.reps * 3):
            order = list(variants) if rep % 2 == 0 else list(reversed(variants))
            for name in order:
                fn = variants[name]
                cpu = time.process_time()
                for _ in range(calls):
                    fn(body, boundary)
                per_call = (time.process_time() - cpu) / calls
                job_rows[name].rounds.append({"us": per_call * 1e6, "ops": 1 / per_call})
        for row in job_rows.values():
            log(f"multipart {job} {row.variant}: {row.median('us'):.1f} us per body")
        rows += job_rows.values()
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 3. The proxy's HTTP client against httpx


def serve_upstream(port: int, uds: str) -> None:
    """The app behind the proxy: a small JSON answer (like the FastAPI test app's) and a 256 KiB one."""
    small = json.dumps({"message": "Hello from the benchmark app", "items": list(range(20))}).encode()
    large = os.urandom(256 * 1024)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = large if scope["path"] == "/large" else small
        kind = b"application/octet-stream" if body is large else b"application/json"
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # As the harness runs apps: the proxies' pooled connections stay, and they reach it on a Unix socket.
    uvicorn_run(app, port, keep_alive=75, uds=uds)


class _Process:
    """What ContentProxy uses of an AppProcess, for an app it did not start."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.guid = GUID
        self.bundle_id = 1
        self.spec = SimpleNamespace(full_path=False)
        self.limits = Limits()
        self.connections: deque[Any] = deque()
        self.busy: set[Any] = set()
        self.closed = False
        self.in_flight = 0

    def release(self) -> None:
        self.in_flight -= 1


class HttpxProxy:
    """The same forwarding as ContentProxy (headers dropped and added, bodies streamed both ways) with httpx."""

    def __init__(self, uds: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"http://{HOST}",
            transport=httpx.AsyncHTTPTransport(uds=uds),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32, keepalive_expiry=30),
            timeout=httpx.Timeout(None, connect=5),
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = scope["raw_path"] or scope["path"].encode()
        target = _Target.parse({**scope, "raw_path": b"/content/" + raw.partition(b"/httpx/")[2]})
        assert target is not None and target.redirect is None
        headers: list[tuple[bytes, bytes]] = []
        host = b""
        has_body = False
        for name, value in scope["headers"]:
            if name in _DROP_REQUEST:
                has_body = has_body or name == b"transfer-encoding"
                continue
            if name == b"cookie":
                cookies = app_cookies(value)
                if cookies is None:
                    continue
                value = cookies
            host = value if name == b"host" else host
            has_body = has_body or name == b"content-length"
            headers.append((name, value))
        scheme = scope.get("scheme", "http").encode()
        headers += [
            (b"x-forwarded-for", scope["client"][0].encode()),
            (b"x-forwarded-proto", scheme),
            (b"x-forwarded-host", host),
            (b"x-forwarded-prefix", target.prefix),
            (b"x-rsc-request", scheme + b"://" + host + raw),
        ]

        async def body() -> AsyncIterator[bytes]:
            more = True
            while more:
                message = await receive()
                yield message.get("body", b"")
                more = message.get("more_body", False)

        request = self.client.build_request(
            scope["method"], target.path.decode("latin-1"), headers=headers, content=body() if has_body else None
        )
        response = await self.client.send(request, stream=True)
        try:
            raw = ((k.lower(), v) for k, v in response.headers.raw)
            kept = response_headers(raw, HOP_BY_HOP, target.guid, 0)
            await send({"type": "http.response.start", "status": response.status_code, "headers": kept})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


def _sniffio_stub() -> None:
    """httpcore 1.0 runs `import sniffio` on every lock it takes (4 per request); anyio 4.13 no longer installs
    sniffio, and a failed import is not cached, so each request would search sys.path 4 times (~2 ms here).
    The stub answers as sniffio does under asyncio, so httpx is measured at its best."""
    if importlib.util.find_spec("sniffio") is None:
        stub = types.ModuleType("sniffio")
        stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
        sys.modules["sniffio"] = stub


def serve_proxy(app_uds: str, port: int) -> None:
    _sniffio_stub()
    process = _Process(app_uds)

    async def resolve(scope: Any, guid: str, bundle_id: int | None) -> Any:
        process.in_flight += 1
        return process

    hand = ContentProxy(resolve, send_error)
    library = HttpxProxy(app_uds)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/httpx/"):
            return await library(scope, receive, send)
        if scope["type"] == "http" and hand.matches(scope["path"]):
            return await hand(scope, receive, send)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    uvicorn_run(app, port)


def bench_proxy(args: argparse.Namespace) -> list[Row]:
    app_port, port = free_port(), free_port()
    uds = str(DATA / "proxy-app.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(uds)
    upstream = server("proxy-app", "upstream", "--app-uds", uds, port=app_port, core=CLIENT_CORE)
    proxy = server("proxy", "proxy", "--app-uds", uds, port=port)
    try:
        rows = []
        for job, path in (("small JSON answer", ""), ("256 KiB answer", "large")):
            urls = {
                "hand-written (asyncio streams + httptools)": f"http://{HOST}:{port}/content/{GUID}/{path}",
                "httpx.AsyncClient (pooled)": f"http://{HOST}:{port}/httpx/{GUID}/{path}",
            }
            for url in urls.values():
                response = httpx.get(url)
                if response.status_code != 200 or len(response.content) < 20:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
            pid = proxy.process.pid
            rows += alternate("proxy", job, {v: (u, pid) for v, u in urls.items()}, args)
        return rows
    finally:
        proxy.stop()
        upstream.stop()


# ---------------------------------------------------------------------------------------------------------------
# 4. The content file server against Starlette's StaticFiles


def make_site() -> Path:
    root = DATA / "site"
    (root / "assets").mkdir(parents=True, exist_ok=True)
    paragraph = "<p>" + "Rendered notebook output, as nbconvert writes it. " * 20 + "</p>\n"
    (root / "index.html").write_text("<!doctype html><html><body>\n" + paragraph * 6 + "</body></html>\n")
    (root / "assets" / "app.js").write_bytes(b"// bundled script\n" + b"x" * (256 * 1024 - 18))
    return root


def serve_static(root: str, port: int) -> None:
    site = files.Site("bench", 1, Path(root))
    library = StaticFiles(directory=root, html=True)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/lib/"):
            return await library({**scope, "path": scope["path"][4:], "root_path": ""}, receive, send)
        raw = scope["raw_path"] or scope["path"].encode()
        await files.serve(scope, receive, send, site, raw[len(b"/hand") :])

    uvicorn_run(app, port)


def bench_static(args: argparse.Namespace) -> list[Row]:
    root = make_site()
    port = free_port()
    service = server("static", "static", "--root", str(root), port=port, check="/hand/")
    try:
        rows = []
        for job, path in (
            (f"index.html ({(root / 'index.html').stat().st_size:,} bytes) at /", ""),
            ("assets/app.js (256 KiB)", "assets/app.js"),
        ):
            urls = {
                "hand-written (sites/files.py)": f"http://{HOST}:{port}/hand/{path}",
                "Starlette StaticFiles (FileResponse)": f"http://{HOST}:{port}/lib/{path}",
            }
            bodies = {httpx.get(u).raise_for_status().content for u in urls.values()}
            if len(bodies) != 1:
                raise RuntimeError(f"the two servers answer {path!r} differently")
            rows += alternate("static", job, {v: (u, service.process.pid) for v, u in urls.items()}, args)
        return rows
    finally:
        service.stop()


# ---------------------------------------------------------------------------------------------------------------
# The report


def table(rows: list[Row]) -> list[str]:
    lines = []
    part = rows[0].part
    if part == "multipart":
        lines += [
            "| body | variant | µs per body (median) | bodies/s | hand-written / library |",
            "|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| request | variant | req/s (median) | p50 ms | server CPU µs/req | hand-written / library"
            " (req/s; CPU) | other CPU |",
            "|---|---|---|---|---|---|---|",
        ]
    for i in range(0, len(rows), 2):
        hand, lib = rows[i], rows[i + 1]
        for row in (hand, lib):
            first = row is hand
            if part == "multipart":
                ratio = f"**{lib.median('us') / hand.median('us'):.2f}×** faster" if first else ""
                lines.append(
                    f"| {row.job if first else ''} | {row.variant} | {row.median('us'):,.1f} "
                    f"| {1e6 / row.median('us'):,.0f} | {ratio} |"
                )
            else:
                faster = hand.median("rps") / lib.median("rps")
                leaner = lib.median("cpu_us") / hand.median("cpu_us")
                ratio = f"**{faster:.2f}×**; {leaner:.2f}× less CPU" if first else ""
                lines.append(
                    f"| {row.job if first else ''} | {row.variant} | {row.median('rps'):,.0f} "
                    f"| {row.median('p50'):.2f} | {row.median('cpu_us'):.0f} | {ratio} | {row.median('other'):.2f} |"
                )
    return lines


DESCRIPTIONS = {
    "hot_path": "`GET /pypi/latest/simple/<p>/` (uv's JSON Accept) and a wheel file of the bench corpus (500 projects,"
    " SQLite, kept under `bench/.work/packyard/p500`), answered by the same server code with the hot path on"
    " (hand-written) and with `HotPathApp` passing every request to the FastAPI app (FastAPI route: `simple_project`,"
    " `package_file` with `FileResponse`). Two server processes, both pinned to core 0, measured in turn.",
    "multipart": "In-process, one core, `time.process_time` per call: twine-shaped bodies (20 metadata fields, a"
    " 2 KB description, then the wheel) through `_Reader`'s callbacks, staging replaced by a byte counter."
    " python-multipart gets the body in 64 KiB writes, as the ASGI server hands it over. Bodies above"
    f" `WHOLE_BODY` ({multipart.WHOLE_BODY // 1024} KiB) go to python-multipart in the server.",
    "proxy": "One server process on core 0 with both: `ContentProxy` (its resolver returning a process that is"
    " already running) at `/content/<guid>/` and the same forwarding with `httpx.AsyncClient` at"
    " `/httpx/<guid>/`; the app (raw ASGI under uvicorn, keep-alive 75 s as the harness runs apps) on core 1"
    " beside wrk. httpcore imports sniffio on every lock it takes and this venv has none (anyio 4.13 dropped it), so"
    " each failed import would search sys.path 4 times per request (~2 ms): httpx runs with a stub sniffio that"
    " answers `asyncio`, its best case.",
    "static": "One server process on core 0: `sites/files.py`'s `serve` at `/hand/` and"
    " `StaticFiles(directory=..., html=True)` at `/lib/`, the same folder.",
}


def report(results: dict[str, list[Row]], args: argparse.Namespace, argv: list[str]) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    shown = " ".join(argv)
    out = [
        f"# Hand-written parts against the libraries ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()})",
        "",
        f"Command: `make bench-handmade BENCH_ARGS='{shown}'` (`.venv-test/bin/python bench/handmade.py {shown}`),"
        f" on {socket.gethostname()}: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, httpx"
        f" {httpx.__version__}, httpcore {importlib.metadata.version('httpcore')}, python-multipart"
        f" {importlib.metadata.version('python-multipart')}, starlette {importlib.metadata.version('starlette')},"
        f" uvicorn {uvicorn.__version__}.",
        "",
        f"wrk: {args.connections} keep-alive connections, {args.reps} rounds of {args.duration} s per variant after a"
        " 2 s warm-up each, variants alternating (order flipped every round); figures are medians of the rounds."
        " `server CPU µs/req` is the server process's CPU time (from /proc) divided by the requests of the round, the"
        " least noisy of the figures; `other CPU` is how many cores' worth went to other processes meanwhile"
        " (shared machine: near 0 is clean).",
    ]
    for part, rows in results.items():
        out += ["", f"## {part}", "", DESCRIPTIONS[part], "", *table(rows)]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=PARTS, help="one part (repeatable); default all")
    parser.add_argument("--reps", type=int, default=5, help="rounds per variant")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--connections", type=int, default=16, help="wrk's keep-alive connections")
    parser.add_argument("--out", type=Path, default=BENCH / "handmade-results.md")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--app-uds", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "hot_path":
        serve_hot_path(args.data, args.variant, args.port)
    elif args.serve == "upstream":
        serve_upstream(args.port, args.app_uds)
    elif args.serve == "proxy":
        serve_proxy(args.app_uds, args.port)
    elif args.serve == "static":
        serve_static(args.root, args.port)
    if args.serve:
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    benches = {"hot_path": bench_hot_path, "multipart": bench_multipart, "proxy": bench_proxy, "static": bench_static}
    results = {part: benches[part](args) for part in (args.part or PARTS)}
    text = report(results, args, argv)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
