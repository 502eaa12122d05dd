"""Websockets through the content proxy, against real app processes (a stdlib ASGI app under the harness), and
how an app that binds its own port survives losing it.

The front and the supervisor are test_runtime's `Front`: one event loop in a thread behind uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from packyard.publishing.proxy.websocket import cross_origin
from packyard.publishing.runtime.limits import Limits
from packyard.publishing.runtime.process import AppProcess
from tests.unit.publishing.runtime.test_runtime import Front, make_spec

GUID = "50c1e700-0000-4000-8000-00000000abcd"

# Echoes what it gets; `/deny` and `/refuse` turn the handshake down; "close please" makes it close first;
# "flood N" sends N messages of 1 MiB, counting them in a file as each send returns.
WS_APP = """
import json, os

async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    path = scope["path"]
    if path.endswith("/deny"):
        headers = [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"token required"})
        return
    if path.endswith("/refuse"):
        await send({"type": "websocket.close", "code": 1008})
        return
    chosen = scope["subprotocols"][-1] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"set-cookie", b"seen=1; Path=/")]})
    hello = {"root_path": scope["root_path"], "path": path, "subprotocols": scope["subprotocols"],
             "headers": {k.decode(): v.decode() for k, v in scope["headers"]}}
    await send({"type": "websocket.send", "text": json.dumps(hello)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            with open(os.environ["CLOSES"], "a") as f:
                f.write(f"{message['code']} {message.get('reason') or ''}\\n")
            return
        text = message.get("text")
        if text == "close please":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked to"})
            return
        if text and text.startswith("flood "):
            for i in range(int(text.split()[1])):
                # Random, so that compression between the front and the browser cannot shrink it.
                await send({"type": "websocket.send", "bytes": bytes([i % 256]) + os.urandom((1 << 20) - 1)})
                with open(os.environ["SENT"] + ".new", "w") as f:
                    f.write(str(i + 1))
                os.replace(os.environ["SENT"] + ".new", os.environ["SENT"])
            continue
        echo = {k: v for k, v in message.items() if k in ("text", "bytes") and v is not None}
        await send({"type": "websocket.send", **echo})
"""


@pytest.fixture(scope="module")
def front() -> Iterator[Front]:
    front = Front()
    yield front
    front.close()


@pytest.fixture(scope="module")
def ws_app(front: Front, tmp_path_factory: pytest.TempPathFactory) -> AppProcess:
    root = tmp_path_factory.mktemp("ws")
    spec = make_spec(root, WS_APP, guid=GUID, CLOSES=str(root / "closes"), SENT=str(root / "sent"))
    process = front.start(spec)
    front.call(front.supervisor.activate, process)
    return process


def url(front: Front, path: str, guid: str = GUID) -> str:
    return f"{front.url.replace('http://', 'ws://')}/content/{guid}/{path}"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def until(check: Any, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def test_messages_subprotocols_and_headers_pass_both_ways(front: Front, ws_app: AppProcess) -> None:
    big = os.urandom(3 << 20)

    async def session() -> dict[str, Any]:
        headers = {"Cookie": "session=abc", "Authorization": "Key not-for-the-app", "X-Forwarded-Prefix": "/forged"}
        async with connect(
            url(front, "socket?x=1"),
            origin=front.url,
            subprotocols=["one", "two"],
            additional_headers=headers,
            max_size=None,
        ) as ws:
            hello = json.loads(await ws.recv())
            in_flight = ws_app.in_flight
            await ws.send("text")
            assert await ws.recv() == "text"
            await ws.send(big)
            echoed = await ws.recv()
            return {**hello, "chosen": ws.subprotocol, "cookie": ws.response.headers.get("set-cookie"),
                    "in_flight": in_flight, "echoed": echoed}  # fmt: skip

    seen = run(session())
    assert seen["echoed"] == big
    assert (seen["chosen"], seen["subprotocols"]) == ("two", ["one", "two"])
    assert seen["cookie"] == "seen=1; Path=/"
    assert (seen["root_path"], seen["path"]) == (f"/content/{GUID}", f"/content/{GUID}/socket")
    headers = seen["headers"]
    host = front.url.removeprefix("http://")
    assert (headers["host"], headers["origin"], headers["cookie"]) == (host, front.url, "session=abc")
    assert headers["x-forwarded-prefix"] == f"/content/{GUID}" and headers["x-forwarded-host"] == host
    assert headers["x-rsc-request"] == f"http://{host}/content/{GUID}/socket?x=1"
    assert "authorization" not in headers  # Packyard's key stays with Packyard
    assert seen["in_flight"] == 1  # the session counts against its process like a request
    assert until(lambda: ws_app.in_flight == 0)


def test_close_codes_and_reasons_pass_both_ways(front: Front, ws_app: AppProcess) -> None:
    closes = Path(ws_app.spec.env["CLOSES"])

    async def app_closes() -> tuple[int, str]:
        async with connect(url(front, "socket"), origin=front.url) as ws:
            await ws.recv()
            await ws.send("close please")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason

    async def browser_closes() -> None:
        async with connect(url(front, "socket"), origin=front.url) as ws:
            await ws.recv()
            await ws.close(4002, "bye")

    assert run(app_closes()) == (4001, "asked to")
    run(browser_closes())
    assert until(lambda: closes.exists() and "4002 bye" in closes.read_text())


def test_an_app_refusing_the_handshake_is_answered_as_it_refused(front: Front, ws_app: AppProcess) -> None:
    async def refused(path: str) -> Any:
        with pytest.raises(InvalidStatus) as exc:
            async with connect(url(front, path), origin=front.url):
                pass
        return exc.value.response

    denied = run(refused("deny"))
    assert (denied.status_code, denied.body, denied.headers["www-authenticate"]) == (401, b"token required", "Bearer")
    assert run(refused("refuse")).status_code == 403


def test_cross_origin_and_unknown_content_are_refused_before_any_app(front: Front, ws_app: AppProcess) -> None:
    async def refused(target: str, origin: str) -> Any:
        with pytest.raises(InvalidStatus) as exc:
            async with connect(target, origin=origin):
                pass
        return exc.value.response

    evil = run(refused(url(front, "socket"), "http://evil.example"))
    assert evil.status_code == 403
    host = front.url.removeprefix("http://")
    assert evil.body.decode().strip() == (
        "Websocket from origin `http://evil.example` refused: content opens websockets only from pages of this "
        f"server (`{host}`)."
    )
    missing = run(refused(url(front, "socket", guid="0000dead-0000-4000-8000-000000000000"), front.url))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("origin", "host", "forwarded_host", "refused"),
    [
        (None, "a.example", None, False),  # not a browser
        ("http://a.example", "a.example", None, False),
        ("https://a.example", "a.example:443", None, False),
        ("http://A.example:80", "a.example", None, False),
        ("https://a.example", "127.0.0.1:4242", "a.example", False),  # behind a proxy that keeps X-Forwarded-Host
        ("http://a.example:8080", "a.example", None, True),
        ("http://b.example", "a.example", None, True),
        ("null", "a.example", None, True),  # sandboxed pages and files
    ],
)
def test_which_origins_are_cross_origin(
    origin: str | None, host: str, forwarded_host: str | None, refused: bool
) -> None:
    headers = [(b"host", host.encode())]
    headers += [(b"origin", origin.encode())] if origin else []
    headers += [(b"x-forwarded-host", forwarded_host.encode())] if forwarded_host else []
    assert (cross_origin({"headers": headers}) is not None) is refused


async def settled(counter: Path) -> int:
    """The count in `counter` once it has not changed for half a second."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 0.5:
        await asyncio.sleep(0.05)
        count = int(counter.read_text()) if counter.exists() else 0
        if count != last:
            last, since = count, time.monotonic()
    return last


def test_a_slow_browser_slows_the_app_down(front: Front, ws_app: AppProcess) -> None:
    sent = Path(ws_app.spec.env["SENT"])
    sent.unlink(missing_ok=True)

    async def flood() -> tuple[int, int]:
        async with connect(url(front, "socket"), origin=front.url, max_size=None, max_queue=1) as ws:
            await ws.recv()
            await ws.send("flood 100")
            stalled = await settled(sent)  # reading nothing: every buffer on the way fills, then the app waits
            for i in range(100):
                assert (await ws.recv())[:1] == bytes([i % 256])
            return stalled, int(sent.read_text())

    stalled, total = run(flood())
    # Loopback buffers (up to 32 MiB on this kernel), the proxy's queue of 16 messages and the front's buffer
    # hold about 40 of them; without back-pressure the app would send all 100 at once.
    assert stalled < 75 and total == 100, stalled


def test_an_unreachable_app_refuses_the_handshake_with_502(front: Front, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, WS_APP, guid="dead0000-0000-4000-8000-00000000abcd", CLOSES="-", SENT="-")
    process = front.start(spec)
    os.kill(process.pid, signal.SIGKILL)
    front.run(process.wait())
    front.overrides[spec.guid] = process
    try:

        async def handshake() -> Any:
            with pytest.raises(InvalidStatus) as exc:
                async with connect(url(front, "socket", guid=spec.guid), origin=front.url):
                    pass
            return exc.value.response

        response = run(handshake())
    finally:
        del front.overrides[spec.guid]
    assert response.status_code == 502
    assert (
        response.body.decode().strip() == "The app did not open the websocket: connection refused. Its log may say why."
    )
    assert until(lambda: process.in_flight == 0)


def test_a_session_silent_past_the_read_timeout_is_closed(front: Front, tmp_path: Path) -> None:
    guid = "50c1e700-0000-4000-8000-00000000beef"
    spec = make_spec(tmp_path, WS_APP, guid=guid, CLOSES=str(tmp_path / "closes"), SENT=str(tmp_path / "sent"))
    process = front.start(spec)
    front.call(front.supervisor.activate, process, Limits(read_timeout=1, idle_timeout=3600))

    async def session() -> tuple[int, str, float]:
        async with connect(url(front, "socket", guid), origin=front.url) as ws:
            await ws.recv()  # the app's hello; the browser says nothing from here on
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason, time.monotonic() - started

    code, reason, seconds = run(session())
    assert (code, reason) == (1001, "Nothing from the browser for 1 s (read_timeout).")
    assert 0.9 <= seconds < 3
    assert until(lambda: process.in_flight == 0)
    front.run(front.supervisor.stop_content(guid))
