"""Deployed APIs as real processes behind the content proxy.

The proxy and the supervisor share one event loop in a thread, behind a real uvicorn on 127.0.0.1, and the
apps are real processes run by this venv's Python (it has uvicorn and FastAPI, as a content environment
would). Clients are httpx in the test thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from starlette.types import Scope

from packyard.http_errors import send_error
from packyard.publishing.errors import AppStartError, NotFound
from packyard.publishing.proxy.http import ContentProxy
from packyard.publishing.runtime.limits import Limits
from packyard.publishing.runtime.process import AppProcess, ProcessSpec, read_log_tail
from packyard.publishing.runtime.supervisor import Supervisor
from packyard.publishing.sandbox import Sandbox

# Not sandboxed: these apps report to the test through files beside their bundle. Every app the suite deploys
# through a server runs sandboxed (tests/test_hostile_content.py shows what that hides).
SANDBOX = Sandbox("off", "")

T = TypeVar("T")
SECRET = "PACKYARD_RUNTIME_TEST_SECRET"

FASTAPI_APP = """
import asyncio, hashlib, os, time
from pathlib import Path
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()

@app.get("/hello")
def hello(request: Request):
    return {"greeting": os.environ["GREETING"], "url": str(request.url_for("hello")),
            "root_path": request.scope["root_path"]}

@app.get("/env/{name}")
def env(name: str):
    return {"value": os.environ.get(name)}

@app.get("/stream")
async def stream(flag: str):
    async def chunks():
        yield b"first\\n"
        # Only a client that already holds the first chunk can create the flag.
        for _ in range(200):
            if Path(flag).exists():
                yield b"second\\n"
                return
            await asyncio.sleep(0.05)
        yield b"timed out\\n"
    return StreamingResponse(chunks(), media_type="text/plain")

@app.get("/download")
async def download(size: int):
    async def chunks():
        block = bytes(range(256)) * 256
        for _ in range(size // len(block)):
            yield block
    return StreamingResponse(chunks(), media_type="application/octet-stream")

@app.post("/upload")
async def upload(request: Request):
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}
"""

# Plain ASGI, stdlib only: starts in a fraction of a second.
ECHO_APP = """
import asyncio, json, os

VERSION = os.environ.get("VERSION", "1")
DELAY = float(os.environ.get("DELAY", "0"))

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if DELAY:
        await asyncio.sleep(DELAY)
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    if "sleep" in query:  # a slow request; the readiness probe is not one
        await asyncio.sleep(float(query["sleep"]))
    body = json.dumps({
        "version": VERSION, "pid": os.getpid(), "root_path": scope["root_path"], "path": scope["path"],
        "raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
        "client": scope["client"][0], "scheme": scope["scheme"],
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
    }).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""

WSGI_APP = """
import json

def application(environ, start_response):
    keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "HTTP_HOST", "wsgi.url_scheme")
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""


class Front:
    """ContentProxy and a Supervisor on one event loop in a thread, served by uvicorn on 127.0.0.1."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # Processes stay until a test stops them, unless it activates them with its own limits.
        self.supervisor = Supervisor(SANDBOX, Limits(init_timeout=30, idle_timeout=3600))
        self.overrides: dict[str, AppProcess] = {}
        # Named TCP, or asyncio leaves Nagle on for accepted connections: a body written after the headers
        # would wait 40 ms for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        proxy = ContentProxy(self._resolve, send_error)
        # Not trusting X-Forwarded-For from loopback, the front stands for a server that clients reach directly.
        config = uvicorn.Config(proxy, log_level="warning", lifespan="off", access_log=False, proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.serving = asyncio.run_coroutine_threadsafe(self.server.serve(sockets=[sock]), self.loop)
        while not self.server.started:
            time.sleep(0.01)

    async def _resolve(self, scope: Scope, guid: str, bundle_id: int | None) -> AppProcess:
        """What Deployer.running does once the content is known: a process counted in flight."""
        if guid in self.overrides:
            self.overrides[guid].in_flight += 1
            return self.overrides[guid]
        process = self.supervisor.acquire(guid, bundle_id) or await self.supervisor.wait_for(guid, bundle_id)
        if process is None:
            raise NotFound(f"No running content `{guid}`.")
        return process

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the loop's thread (the supervisor is not thread-safe)."""

        async def call() -> T:
            return fn(*args)

        return self.run(call())

    def start(self, spec: ProcessSpec) -> AppProcess:
        return self.run(self.supervisor.start(spec))

    def close(self) -> None:
        self.run(self.supervisor.close())
        self.server.should_exit = True
        self.serving.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def front() -> Iterator[Front]:
    front = Front()
    yield front
    front.close()


def make_spec(
    root: Path,
    source: str,
    entrypoint: str = "main",
    kind: str = "asgi",
    guid: str = "",
    bundle_id: int = 1,
    **env: str,
) -> ProcessSpec:
    bundle = root / f"bundle{bundle_id}"
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / f"{entrypoint.partition(':')[0]}.py").write_text(source)
    guid = guid or f"c0ffee00-{abs(hash(root)) % 10**4:04d}-4000-8000-{bundle_id:012d}"
    return ProcessSpec(guid, bundle_id, kind, entrypoint, Path(sys.executable), bundle, env, root / "app.log")


def assert_stopped_cleanly(front: Front, process: AppProcess) -> None:
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again, so the exit code is -15.
    assert front.run(process.wait(), timeout=40) == -signal.SIGTERM
    assert f"Finished server process [{process.pid}]" in "\n".join(read_log_tail(process.spec.log_path, 50))


@pytest.fixture(scope="module")
def fastapi_app(front: Front, tmp_path_factory: pytest.TempPathFactory) -> AppProcess:
    root = tmp_path_factory.mktemp("fastapi")
    spec = make_spec(root, FASTAPI_APP, guid="5f0c7c2e-1d3b-4a8e-9b6f-2c1d0e9a7b31", GREETING="Hello from Packyard")
    # Set only in the server's environment: the app must not see it.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET, "server-only")
        process = front.start(spec)
    front.call(front.supervisor.activate, process)
    return process


def test_fastapi_sees_its_prefix(front: Front, fastapi_app: AppProcess) -> None:
    base = f"{front.url}/content/{fastapi_app.guid}"
    hello = httpx.get(f"{base}/hello").json()
    assert hello == {
        "greeting": "Hello from Packyard",
        "url": f"{base}/hello",
        "root_path": f"/content/{fastapi_app.guid}",
    }
    docs = httpx.get(f"{base}/docs")
    assert docs.status_code == 200
    assert f"'/content/{fastapi_app.guid}/openapi.json'" in docs.text
    assert httpx.get(f"{base}/openapi.json").json()["paths"].keys() >= {"/hello"}


def test_a_fastapi_app_without_a_root_route_opens_on_its_docs(front: Front, fastapi_app: AppProcess) -> None:
    base = f"{front.url}/content/{fastapi_app.guid}"
    root = httpx.get(f"{base}/")
    assert root.status_code == 307 and root.headers["location"] == f"/content/{fastapi_app.guid}/docs"
    assert httpx.get(f"{base}/", follow_redirects=True).status_code == 200


def test_the_app_gets_only_its_own_environment(front: Front, fastapi_app: AppProcess) -> None:
    def env(name: str) -> str | None:
        return httpx.get(f"{front.url}/content/{fastapi_app.guid}/env/{name}").json()["value"]

    assert env(SECRET) is None
    assert env("GREETING") == "Hello from Packyard"
    assert env("PYTHONUNBUFFERED") == "1"
    assert env("PATH").startswith(f"{Path(sys.executable).parent}{os.pathsep}")


def test_a_streaming_response_flows_through(front: Front, fastapi_app: AppProcess, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    url = f"{front.url}/content/{fastapi_app.guid}/stream"
    with httpx.stream("GET", url, params={"flag": str(flag)}, timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines) == "first"  # a buffering proxy would hold this until the app gave up
        flag.touch()
        assert list(lines) == ["second"]


def test_large_bodies_stream_both_ways(front: Front, fastapi_app: AppProcess) -> None:
    base = f"{front.url}/content/{fastapi_app.guid}"
    size = 8 * 1024 * 1024
    digest = hashlib.sha256()
    with httpx.stream("GET", f"{base}/download", params={"size": size}, timeout=30) as response:
        for chunk in response.iter_raw():
            digest.update(chunk)
    expected = hashlib.sha256(bytes(range(256)) * 256 * (size // 65536)).hexdigest()
    assert digest.hexdigest() == expected

    def chunks() -> Iterator[bytes]:  # no length: the proxy passes the body on chunked
        for _ in range(size // 65536):
            yield bytes(range(256)) * 256

    assert httpx.post(f"{base}/upload", content=chunks(), timeout=30).json() == {"size": size, "sha256": expected}
    body = os.urandom(3 * 1024 * 1024)
    result = httpx.post(f"{base}/upload", content=body, timeout=30).json()
    assert result == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_requests_reach_the_app_as_connect_sends_them(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ECHO_APP)
    front.call(front.supervisor.activate, front.start(spec))
    base = f"{front.url}/content/{spec.guid}"

    redirect = httpx.get(f"{base}?a=1")
    assert (redirect.status_code, redirect.headers["location"]) == (301, f"./{spec.guid}/?a=1")
    seen = httpx.get(
        f"{base}?a=1",
        follow_redirects=True,
        headers={"Authorization": "Key abc123", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Prefix": "/evil"},
    ).json()
    assert (seen["root_path"], seen["path"], seen["query"]) == (
        f"/content/{spec.guid}",
        f"/content/{spec.guid}/",
        "a=1",
    )
    headers = seen["headers"]
    assert "authorization" not in headers  # Packyard's key is not the app's business
    assert headers["x-forwarded-for"] == seen["client"] == "127.0.0.1"
    assert headers["x-forwarded-prefix"] == f"/content/{spec.guid}"
    assert headers["x-rsc-request"] == f"{base}/?a=1"
    assert headers["host"] == headers["x-forwarded-host"] == front.url.removeprefix("http://")

    head = httpx.head(f"{base}/")
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) > 0
    seen = httpx.get(f"{base}/a%2Fb/c d", headers={"Authorization": "Bearer app-token"}).json()
    assert "authorization" not in seen["headers"]  # any scheme may carry a Packyard token (proxy/headers.py)
    assert seen["raw_path"] == f"/content/{spec.guid}/a%2Fb/c%20d"


def test_a_wsgi_app_gets_script_name_and_path_info(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, WSGI_APP, kind="wsgi")
    front.call(front.supervisor.activate, front.start(spec))
    seen = httpx.get(f"{front.url}/content/{spec.guid}/items/7?full=1").json()
    assert seen == {
        "SCRIPT_NAME": f"/content/{spec.guid}",
        "PATH_INFO": "/items/7",
        "QUERY_STRING": "full=1",
        "HTTP_HOST": front.url.removeprefix("http://"),
        "wsgi.url_scheme": "http",
    }


@pytest.mark.parametrize(
    ("source", "entrypoint"),
    [
        ("from echo import app as inner\ndef create_app():\n    return inner\n", "main"),
        ("from echo import app as inner\nclass api:\n    v1 = inner\n", "main:api.v1"),
        ("from echo import app as inner\ndef make():\n    return inner\n", "main:make"),
    ],
    ids=["factory", "dotted", "named-factory"],
)
def test_entrypoints_name_apps_the_way_connect_does(front: Front, tmp_path: Path, source: str, entrypoint: str) -> None:
    spec = make_spec(tmp_path, source, entrypoint)
    (spec.cwd / "echo.py").write_text(ECHO_APP)
    front.call(front.supervisor.activate, front.start(spec))
    assert httpx.get(f"{front.url}/content/{spec.guid}/").json()["version"] == "1"


def test_an_app_that_fails_to_import_reports_its_traceback(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "import definitely_missing_module\n")
    with pytest.raises(AppStartError) as error:
        front.start(spec)
    message = str(error.value)
    assert message.startswith("The app did not start: it exited with code 1. Its last output:\n")
    assert "Traceback (most recent call last):" in message
    assert message.endswith("ModuleNotFoundError: No module named 'definitely_missing_module'")
    log = read_log_tail(spec.log_path, 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[bundle 1\] ModuleNotFoundError: .*", log[0])

    spec = make_spec(tmp_path, "x = 1\n")
    with pytest.raises(AppStartError, match=r"module `main` defines none of `app`, `application`, `create_app`"):
        front.start(spec)


def test_an_app_that_never_answers_times_out(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "import time\nprint('connecting to the database', flush=True)\ntime.sleep(30)\n")
    supervisor = Supervisor(SANDBOX, Limits(init_timeout=1))
    with pytest.raises(AppStartError) as error:
        front.run(supervisor.start(spec))
    assert str(error.value) == (
        "The app did not start: it did not answer HTTP within 1 s (`init_timeout`). "
        "Its last output:\nconnecting to the database"
    )


def test_a_crashed_app_restarts_with_backoff(front: Front, tmp_path: Path) -> None:
    # It crashes 0.3 s after its first request (the supervisor's readiness probe), however slow its start.
    crash = (
        "import os, threading\n"
        "timer = threading.Timer(0.3, os._exit, (3,))\n"
        "async def crashing(scope, receive, send):\n"
        "    if scope['type'] == 'http' and not timer.is_alive():\n"
        "        timer.start()\n"
        "    await echo(scope, receive, send)\n"
    )
    spec = make_spec(tmp_path, ECHO_APP.replace("async def app(", "async def echo(") + crash, "main:crashing")
    first = front.start(spec)
    front.call(front.supervisor.activate, first)
    pids = {first.pid}
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for line in read_log_tail(spec.log_path, 100) if "restarting" in line]
        process = front.call(front.supervisor.find, spec.guid)
        if process is not None:
            pids.add(process.pid)
        if len(lines) >= 2:
            break
        time.sleep(0.05)
    assert [line.split("] ", 1)[1] for line in lines[:2]] == [
        "Process exited with code 3; restarting in 1 s.",
        "Process exited with code 3; restarting in 2 s.",
    ]
    assert len(pids) >= 2  # it served again in between, as a new process
    assert lines[0] in front.call(front.supervisor.log_tail, spec.guid, 200)
    front.run(front.supervisor.stop_content(spec.guid))
    assert front.call(front.supervisor.find, spec.guid) is None


def test_redeploy_under_load_loses_no_request(front: Front, tmp_path: Path) -> None:
    v1 = front.start(
        make_spec(tmp_path, ECHO_APP, guid="0d9e3c4b-aaaa-4bbb-8ccc-000000000001", VERSION="1", DELAY="0.03")
    )
    front.call(front.supervisor.activate, v1)
    v2_spec = make_spec(tmp_path, ECHO_APP, guid=v1.guid, bundle_id=2, VERSION="2", DELAY="0.03")
    v2 = front.start(v2_spec)
    url = f"{front.url}/content/{v1.guid}/"
    stop = time.monotonic() + 2.0
    switched = 0.0
    results: list[tuple[float, float, int, str]] = []

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    response = client.get(url)
                    results.append((started, time.monotonic(), response.status_code, response.json()["version"]))
                except httpx.HTTPError as exc:
                    results.append((started, time.monotonic(), 0, repr(exc)))

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(load) for _ in range(8)]
        time.sleep(0.8)
        front.call(front.supervisor.activate, v2)
        switched = time.monotonic()
        for future in futures:
            future.result()

    failures = [r for r in results if r[2] != 200]
    assert not failures, failures[:5]
    assert {r[3] for r in results if r[0] > switched} == {"2"}
    assert any(r[3] == "1" and r[1] > switched for r in results)  # in flight at the switch, finished by v1
    assert len(results) > 50
    assert_stopped_cleanly(front, v1)


def test_a_draft_is_served_beside_the_active_bundle_and_promoted_in_place(front: Front, tmp_path: Path) -> None:
    active = front.start(make_spec(tmp_path, ECHO_APP, VERSION="1"))
    front.call(front.supervisor.activate, active)
    draft = front.start(make_spec(tmp_path, ECHO_APP, guid=active.guid, bundle_id=2, VERSION="2"))
    front.call(front.supervisor.add_draft, draft)
    base = f"{front.url}/content/{active.guid}"

    assert httpx.get(f"{base}/").json()["version"] == "1"
    seen = httpx.get(f"{base}/_bundle2/x").json()
    assert (seen["version"], seen["root_path"]) == ("2", f"/content/{active.guid}/_bundle2")
    assert seen["path"] == f"/content/{active.guid}/_bundle2/x"
    assert httpx.get(f"{base}/_bundle2").headers["location"] == "./_bundle2/"
    assert httpx.get(f"{base}/_bundle9/").status_code == 404

    assert front.call(front.supervisor.promote, active.guid, 2) is True
    seen = httpx.get(f"{base}/").json()
    assert (seen["version"], seen["pid"], seen["root_path"]) == ("2", draft.pid, f"/content/{active.guid}")
    assert_stopped_cleanly(front, active)
    assert front.call(front.supervisor.promote, active.guid, 3) is False


def test_an_unreachable_app_answers_502_naming_the_content(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ECHO_APP, guid="dead0000-0000-4000-8000-000000000000")
    process = front.start(spec)
    os.kill(process.pid, signal.SIGKILL)
    front.run(process.wait())
    front.overrides[spec.guid] = process
    try:
        response = httpx.get(f"{front.url}/content/{spec.guid}/", headers={"Accept": "application/json"})
    finally:
        del front.overrides[spec.guid]
    assert response.status_code == 502
    assert json.loads(response.text)["detail"] == (
        f"Content `{spec.guid}` (bundle 1) did not answer: connection refused. Its log may say why."
    )
    # The client may read the answer before the server's task finishes counting the request out.
    deadline = time.monotonic() + 5
    while process.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.in_flight == 0


def test_a_full_pool_makes_requests_wait_then_answers_503(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ECHO_APP)
    limits = Limits(max_processes=1, max_conns_per_process=1, idle_timeout=3600, init_timeout=30)
    front.supervisor.queue_timeout = 0.5  # read when the pool opens
    try:
        front.call(front.supervisor.activate, front.start(spec), limits)
    finally:
        front.supervisor.queue_timeout = 30.0
    url = f"{front.url}/content/{spec.guid}/"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.get, f"{url}?sleep=1.5", timeout=30)
        time.sleep(0.3)  # the first holds the only connection
        refused = httpx.get(url, headers={"Accept": "application/json"}, timeout=30)
        assert first.result().status_code == 200
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
    assert json.loads(refused.text)["detail"] == (
        f"Content `{spec.guid}` is busy: its 1 processes (`max_processes` is 1) each serve 1 connections "
        "(`max_conns_per_process`), and none had room within 0.5 s. Try again in a few seconds; its owner can "
        "raise those settings."
    )
    front.run(front.supervisor.stop_content(spec.guid))


def test_idle_processes_stop_and_the_next_request_starts_one(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ECHO_APP)
    first = front.start(spec)
    front.call(front.supervisor.activate, first, Limits(idle_timeout=1, init_timeout=30))
    url = f"{front.url}/content/{spec.guid}/"
    assert httpx.get(url).json()["pid"] == first.pid
    assert_stopped_cleanly(front, first)  # about a second after its last request
    assert front.call(front.supervisor.processes, spec.guid) == []
    started = time.monotonic()
    second = httpx.get(url, timeout=30).json()["pid"]
    assert second != first.pid and time.monotonic() - started < 5
    assert "Stopping process" in "\n".join(read_log_tail(spec.log_path, 50))

    # Kept warm: `min_processes` start without a request, and outlive the idle timeout.
    front.call(front.supervisor.configure, spec.guid, Limits(min_processes=2, idle_timeout=1, init_timeout=30))
    deadline = time.monotonic() + 20
    while len(front.call(front.supervisor.processes, spec.guid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    warm = {p.pid for p in front.call(front.supervisor.processes, spec.guid)}
    time.sleep(1.5)
    assert len(warm) == 2 and {p.pid for p in front.call(front.supervisor.processes, spec.guid)} == warm
    front.run(front.supervisor.stop_content(spec.guid))


def test_a_silent_app_answers_504_after_its_connection_timeout(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ECHO_APP)
    process = front.start(spec)
    front.call(front.supervisor.activate, process, Limits(connection_timeout=1, idle_timeout=3600, init_timeout=30))
    started = time.monotonic()
    response = httpx.get(
        f"{front.url}/content/{spec.guid}/?sleep=2.5", headers={"Accept": "application/json"}, timeout=30
    )
    assert response.status_code == 504 and 1 <= time.monotonic() - started < 3
    assert json.loads(response.text)["detail"] == (
        f"Content `{spec.guid}` (bundle 1) sent nothing for 1 s (its `connection_timeout`); its log may say why, "
        "or its owner can raise the timeout."
    )
    assert front.call(front.supervisor.find, spec.guid) is process  # the app is slow, not dead
    front.run(front.supervisor.stop_content(spec.guid))


def test_a_silent_client_gets_408_after_the_read_timeout(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ECHO_APP)
    front.call(front.supervisor.activate, front.start(spec), Limits(read_timeout=1, idle_timeout=3600))
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        started = time.monotonic()
        client.sendall(
            f"POST /content/{spec.guid}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789".encode()
        )
        answer = ""
        while "read_timeout" not in answer and (chunk := client.recv(65536)):
            answer += chunk.decode()
    assert answer.startswith("HTTP/1.1 408 ") and 1 <= time.monotonic() - started < 3
    assert "nothing came for 1 s (the content's `read_timeout`)" in answer
    front.run(front.supervisor.stop_content(spec.guid))
