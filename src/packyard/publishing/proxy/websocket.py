"""Websocket sessions through `/content/<guid>/...`: the browser's side is the front server's ASGI websocket, the
app's side a `websockets` client on loopback. Messages, subprotocols, close codes and reasons pass both ways, and
each side waits for the other to take what it sent (back-pressure), so a slow browser slows the app down instead
of filling the server's memory. A session silent past the content's `read_timeout` (nothing from the browser)
or `connection_timeout` (nothing either way) is closed with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Response

from packyard.publishing.errors import AppUnavailable, PublishingError
from packyard.publishing.proxy import headers
from packyard.publishing.runtime.process import AppProcess

log = logging.getLogger("packyard.proxy")

HANDSHAKE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
MAX_QUEUE = 16  # messages from the app waiting for the browser before the app's socket is no longer read
# The websockets client writes its own handshake headers (and the Host, from the URI it is given).
_DROP_REQUEST = headers.REQUEST_DROPS | {
    b"host",
    b"content-length",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
}
# What the front server writes in its own handshake response.
_DROP_RESPONSE = headers.HOP_BY_HOP | {
    b"date",
    b"server",
    b"content-length",
    b"sec-websocket-accept",
    b"sec-websocket-protocol",
    b"sec-websocket-extensions",
}
# Close codes that are never sent in a close frame (RFC 6455 7.4.1).
_UNSENDABLE = frozenset({1005, 1006, 1015})
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def cross_origin(scope: Scope) -> str | None:
    """Why a handshake is refused as cross-origin, or None: a browser always sends Origin, and only a page of
    this server may open a websocket to its content, whatever origins the app itself would allow."""
    origin = header(scope, b"origin")
    if origin is None:
        return None
    parsed = urlsplit(origin)
    seen = _authority(parsed.netloc, parsed.scheme)
    hosts = {_authority(h, "http") for h in (header(scope, b"host"), header(scope, b"x-forwarded-host")) if h}
    hosts |= {_authority(h, "https") for h in hosts}
    if seen and seen in hosts:
        return None
    return (
        f"Websocket from origin `{origin}` refused: content opens websockets only from pages of this server "
        f"(`{header(scope, b'host')}`)."
    )


def _authority(netloc: str, scheme: str) -> str:
    netloc = netloc.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and netloc.endswith(":" + default) and not netloc.endswith("]"):
        netloc = netloc[: -len(default) - 1]
    return netloc


def handshake_headers(scope: Scope, prefix: bytes) -> list[tuple[str, str]]:
    """The browser's handshake headers for the app, with what the proxy adds for HTTP requests too."""
    fields: list[tuple[str, str]] = []
    for name, value in scope["headers"]:
        if name in _DROP_REQUEST:
            continue
        if name == b"cookie":
            kept = headers.app_cookies(value)
            if kept is None:
                continue
            value = kept
        fields.append((name.decode("latin-1"), value.decode("latin-1")))
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    host = header(scope, b"host") or "127.0.0.1"
    client = scope.get("client")
    if client:
        fields.append(("x-forwarded-for", client[0]))
    qs = "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    fields += [
        ("x-forwarded-proto", scheme),
        ("x-forwarded-host", host),
        ("x-forwarded-prefix", prefix.decode("latin-1")),
        ("x-rsc-request", f"{scheme}://{host}{raw}{qs}"),
    ]
    viewer = headers.viewer(scope)
    if viewer is not None:
        fields.append(("rstudio-connect-credentials", viewer.decode()))
    return fields


class _Silence:
    """When a message last came from the browser, and from either side."""

    def __init__(self) -> None:
        self.browser = self.any = time.monotonic()


async def relay(
    scope: Scope,
    receive: Receive,
    send: Send,
    process: AppProcess,
    path: bytes,
    handshake: list[tuple[str, str]],
) -> None:
    """Open the websocket at `path` of the app `process` runs, then carry messages both ways until either side
    closes, or nothing came from the browser for its `read_timeout` seconds, or either way for its
    `connection_timeout` (0: never). An app that refuses the handshake has its HTTP answer passed on; one that
    does not answer raises AppUnavailable (the handshake with the browser is still open, so the caller can
    answer it)."""
    read_timeout, connection_timeout = process.limits.read_timeout, process.limits.connection_timeout
    # The browser's Host goes in the URI so that the app sees it (frameworks compare it with Origin); the
    # connection goes to the app's socket.
    uri = f"ws://{header(scope, b'host') or '127.0.0.1'}{path.decode('latin-1')}"
    try:
        upstream = await unix_connect(
            process.address,
            uri,
            subprotocols=scope.get("subprotocols") or None,
            additional_headers=handshake,
            user_agent_header=None,  # the browser's User-Agent is among the headers
            proxy=None,
            compression=None,  # loopback: the front server compresses for the browser
            open_timeout=HANDSHAKE_TIMEOUT,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=None,  # the front server limits what browsers send; what the app sends is the app's call
            max_queue=MAX_QUEUE,
        )
    except InvalidStatus as exc:
        return await _refuse(scope, send, exc, process)
    except InvalidURI as exc:
        raise PublishingError(f"The Host header `{header(scope, b'host')}` is not a valid host name.") from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise AppUnavailable(f"The app did not open the websocket: {_describe(exc)}. Its log may say why.") from exc
    assert upstream.response is not None  # set once the handshake succeeded
    accept = {
        "type": "websocket.accept",
        "subprotocol": upstream.subprotocol,
        "headers": _response_headers(upstream.response, process),
    }
    silence = _Silence()
    tasks: set[asyncio.Future[Any]] = set()
    try:
        await send(accept)
        to_browser = asyncio.ensure_future(_app_to_browser(upstream, send, silence))
        to_app = asyncio.ensure_future(_browser_to_app(receive, upstream, silence))
        tasks = {to_browser, to_app}
        if read_timeout or connection_timeout:
            tasks.add(asyncio.ensure_future(_until_silent(silence, read_timeout, connection_timeout)))
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for finished in done - {to_browser, to_app}:
            reason = finished.result()
            with contextlib.suppress(OSError):
                await send({"type": "websocket.close", "code": 1001, "reason": reason})
            await upstream.close(1001, reason)
            return
        if to_app.done():
            # The browser left (its close went to the app), or the app closed while a message was on its way:
            # either way the app's close arrives next and `to_browser` finishes with it.
            await asyncio.wait({to_browser}, timeout=CLOSE_TIMEOUT)
    except OSError:
        pass  # the browser left during the handshake
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()


async def _until_silent(silence: _Silence, read_timeout: float, connection_timeout: float) -> str:
    """Return the close reason once a timeout passes without a message, noticed within a tenth of it."""
    shortest = min(t for t in (read_timeout, connection_timeout) if t)
    while True:
        await asyncio.sleep(min(max(shortest / 10, 0.25), 30.0))
        now = time.monotonic()
        if read_timeout and now - silence.browser >= read_timeout:
            return f"Nothing from the browser for {read_timeout:g} s (read_timeout)."
        if connection_timeout and now - silence.any >= connection_timeout:
            return f"No message either way for {connection_timeout:g} s (connection_timeout)."


async def _app_to_browser(upstream: ClientConnection, send: Send, silence: _Silence) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in upstream:
            silence.any = time.monotonic()
            if isinstance(message, str):
                await send({"type": "websocket.send", "text": message})
            else:
                await send({"type": "websocket.send", "bytes": message})
    code, reason = upstream.close_code, upstream.close_reason
    if code == 1006 or code is None:
        # The app's side ended without a close frame: the process died or dropped the connection.
        code, reason = 1011, "The app ended the connection abruptly; its log may say why."
    elif code in _UNSENDABLE:
        code, reason = 1000, ""
    with contextlib.suppress(OSError):  # the browser may have gone first
        await send({"type": "websocket.close", "code": code, "reason": reason})


async def _browser_to_app(receive: Receive, upstream: ClientConnection, silence: _Silence) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await receive()
            silence.browser = silence.any = time.monotonic()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                await upstream.send(text if text is not None else message.get("bytes") or b"")
            elif message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
                await upstream.close(1001 if code in _UNSENDABLE else code, reason)
                return


async def _refuse(scope: Scope, send: Send, exc: InvalidStatus, process: AppProcess) -> None:
    """Pass the app's refusal of the handshake on to the browser as it came."""
    response = exc.response
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    fields = _response_headers(response, process)
    body = response.body or b""
    fields.append((b"content-length", str(len(body)).encode()))
    await send({"type": "websocket.http.response.start", "status": response.status_code, "headers": fields})
    await send({"type": "websocket.http.response.body", "body": body})


def _response_headers(response: Response, process: AppProcess) -> list[tuple[bytes, bytes]]:
    raw = ((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.raw_items())
    return headers.response_headers(raw, _DROP_RESPONSE, process.guid, process.bundle_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:g} s"
    return str(exc) or type(exc).__name__
