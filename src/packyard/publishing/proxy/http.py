"""`/content/<guid>/...` as raw ASGI: forward each request to the content's app process on loopback.

A small HTTP/1.1 client over asyncio streams, with keep-alive connections kept on each AppProcess: the app is
always uvicorn behind our own harness, so httptools parses its responses and nothing else is needed. In `make
bench-handmade` it served 11.9x httpx.AsyncClient's requests/s with 16x less CPU per request (small answers,
bench/handmade-results.md). Bodies stream both ways
without buffering. The app sees the path without the prefix plus `X-Forwarded-Prefix`, which the harness turns
into its root_path; an app whose routes carry the prefix (Bokeh) gets the full path. Websockets are carried by
websocket.py, counted against the process like a request in flight.

The resolver hands over a process already counted in flight; `release()` gives the connection back to its
pool. The timeouts cost no timer per request: a connection in use sits in `process.busy` with the time data
last moved, and the supervisor's tending cuts one silent past `connection_timeout`. Only a request body,
waited for from the client, runs under a timer (`read_timeout`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, cast
from urllib.parse import quote, unquote

import httptools
from starlette.types import Message, Receive, Scope, Send

from packyard.errors import PackyardError
from packyard.publishing.errors import AppSilent, AppUnavailable, ClientSilent, Forbidden, NotFound
from packyard.publishing.proxy import headers, websocket
from packyard.publishing.runtime.process import AppProcess
from packyard.publishing.sites import files

log = logging.getLogger("packyard.proxy")

PREFIX = "/content/"
_NO_CONTENT = "Content is served at `/content/<guid>/`; this URL names no content."
# Shorter than the harness's keep-alive timeout (75 s), so the app never closes a connection we reuse.
IDLE_EXPIRY = 30.0
MAX_IDLE = 32
READ_SIZE = 65536
CONNECT_TIMEOUT = 5.0
# The front server already answered `100 Continue`.
_DROP_REQUEST = headers.REQUEST_DROPS | {b"expect"}
# RFC 9110 9.2.2: the only requests sent again on a fresh connection when a pooled one fails.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_DROP_RESPONSE = headers.HOP_BY_HOP


class ErrorSender(Protocol):
    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, exc: PackyardError, status: int | None = None
    ) -> None: ...


# (scope, guid, draft bundle id or None) -> a process counted in flight, which the proxy releases.
Resolver = Callable[[Scope, str, int | None], Awaitable[AppProcess]]
SiteResolver = Callable[[Scope, str, int | None], Awaitable[files.Site | None]]


class ContentProxy:
    def __init__(self, resolve: Resolver, send_error: ErrorSender, resolve_site: SiteResolver | None = None) -> None:
        self.resolve = resolve
        self.send_error = send_error
        self.resolve_site = resolve_site

    def matches(self, path: str) -> bool:
        return path.startswith(PREFIX) or path == "/content"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            return await self._websocket(scope, receive, send)
        if scope["type"] != "http":
            return
        target = _Target.parse(scope)
        if target is None:
            return await self.send_error(scope, receive, send, NotFound(_NO_CONTENT))
        if target.redirect is not None:
            return await _send_redirect(send, target.redirect)
        if self.resolve_site is not None:  # content served as files: no process behind it
            try:
                site = await self.resolve_site(scope, target.guid, target.bundle_id)
            except PackyardError as exc:
                return await self.send_error(scope, receive, send, exc)
            if site is not None:
                return await files.serve(scope, receive, send, site, target.path)
        try:
            process = await self._acquire_process(scope, target)
        except PackyardError as exc:
            return await self.send_error(scope, receive, send, exc)
        try:
            await self._forward(scope, receive, send, target, process)
        except (AppUnavailable, ClientSilent) as exc:
            await self.send_error(scope, receive, send, exc)
        finally:
            process.release()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same checks as a request (target, access, a running process), then the session is relayed."""
        if (await receive())["type"] != "websocket.connect":
            return
        target = _Target.parse(scope)
        if target is None or target.redirect is not None:
            message = _NO_CONTENT if target is None else "A content's websocket URL has a path below its guid."
            return await self.refuse(scope, receive, send, NotFound(message))
        refusal = websocket.cross_origin(scope)
        if refusal is not None:
            return await self.refuse(scope, receive, send, Forbidden(refusal))
        try:
            if self.resolve_site is not None and await self.resolve_site(scope, target.guid, target.bundle_id):
                message = f"Content `{target.guid}` is served as files; it has no websockets."
                return await self.refuse(scope, receive, send, NotFound(message))
            process = await self._acquire_process(scope, target)
        except PackyardError as exc:
            return await self.refuse(scope, receive, send, exc)
        try:
            handshake = websocket.handshake_headers(scope, target.prefix)
            path = target.prefix + target.path if process.spec.full_path else target.path
            await websocket.relay(scope, receive, send, process, path, handshake)
        except PackyardError as exc:
            await self.refuse(scope, receive, send, exc)
        finally:
            process.release()

    async def refuse(self, scope: Scope, receive: Receive, send: Send, exc: PackyardError) -> None:
        """Answer a websocket handshake with the error's HTTP response, where the front server can send one."""
        if "websocket.http.response" in scope.get("extensions", {}):
            return await self.send_error(scope, receive, send, exc)
        await send({"type": "websocket.close", "code": 1008})

    async def _acquire_process(self, scope: Scope, target: _Target) -> AppProcess:
        """The process to use, counted in flight (a websocket counts as one connection for its whole life):
        the least-loaded with room, or one the resolver waited for. Give it back with `process.release()`."""
        return await self.resolve(scope, target.guid, target.bundle_id)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, target: _Target, process: AppProcess) -> None:
        head, framing = _request_head(scope, target, process.spec.full_path)
        conn = _pooled(process)
        reused = conn is not None
        busy = process.busy
        try:
            if conn is None:
                conn = await _connect(process)
            busy.add(conn)
            replay = await _send_request(conn, head, framing, receive, process.limits.read_timeout)
            if replay is None:  # the client went away while sending its body
                conn.close()
                return
            try:
                reusable = await _relay(conn, scope["method"] == "HEAD", send, receive, process)
            except (_NoResponse, ConnectionError) as exc:
                if (
                    isinstance(exc, _ResponseStarted)
                    or conn.expired
                    or not (reused and replay and scope["method"] in _IDEMPOTENT)
                ):
                    raise
                # A pooled connection that closed under us, and a request safe to repeat: send it once more.
                conn.close()
                busy.discard(conn)
                conn = await _connect(process)
                busy.add(conn)
                conn.writer.write(replay)
                reusable = await _relay(conn, scope["method"] == "HEAD", send, receive, process)
        except (OSError, _NoResponse, httptools.HttpParserError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, _ResponseStarted):
                log.warning("Content %s (bundle %s): the response broke off: %s", process.guid, process.bundle_id, exc)
                return
            if conn is not None and conn.expired:
                seconds = process.limits.connection_timeout
                raise AppSilent(
                    f"Content `{process.guid}` (bundle {process.bundle_id}) sent nothing for {seconds:g} s "
                    "(its `connection_timeout`); its log may say why, or its owner can raise the timeout."
                ) from exc
            raise AppUnavailable(
                f"Content `{process.guid}` (bundle {process.bundle_id}) did not answer: {_describe(exc)}. "
                "Its log may say why."
            ) from exc
        except BaseException:  # the client left, or was too slow: the request is half sent, the connection useless
            if conn is not None:
                conn.close()
            raise
        finally:
            busy.discard(conn)
        if reusable and not process.closed and len(process.connections) < MAX_IDLE:
            conn.released = time.monotonic()
            process.connections.append(conn)
        else:
            conn.close()


class _Target:
    __slots__ = ("guid", "bundle_id", "prefix", "path", "redirect")

    def __init__(self, guid: str, bundle_id: int | None, prefix: bytes, path: bytes, redirect: bytes | None) -> None:
        self.guid = guid
        self.bundle_id = bundle_id
        self.prefix = prefix  # as the client sent it, with any root path
        self.path = path  # what the app sees, from "/", raw (still percent-encoded)
        self.redirect = redirect

    @classmethod
    def parse(cls, scope: Scope) -> _Target | None:
        """`/content/<guid>/[_bundle<id>/]rest`; a missing slash after either segment asks for a redirect."""
        root = scope.get("root_path", "").encode()
        raw: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
        if root and not raw.startswith(root + b"/content/"):
            root = b""  # a server that leaves root_path out of the path
        rest = raw[len(root) + len(PREFIX) :]
        segment, slash, tail = rest.partition(b"/")
        if not segment:
            return None
        guid = unquote(segment.decode("latin-1"))
        qs = b"?" + scope["query_string"] if scope.get("query_string") else b""
        # Relative, so it stays right behind any proxy prefix; "./" keeps a segment with ":" from reading as a scheme.
        if not slash:
            return cls(guid, None, b"", b"", b"./" + segment + b"/" + qs)
        prefix = root + b"/content/" + segment
        bundle_id = None
        if tail.startswith(b"_bundle"):
            draft, slash, after = tail.partition(b"/")
            if draft[7:].isdigit():
                if not slash:
                    return cls(guid, None, b"", b"", b"./" + draft + b"/" + qs)
                bundle_id = int(draft[7:])
                prefix += b"/" + draft
                tail = after
        return cls(guid, bundle_id, prefix, b"/" + tail + qs, None)


class _Connection:
    __slots__ = ("reader", "writer", "released", "last_io", "expired")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.released = 0.0
        self.last_io = time.monotonic()  # while in use: when data last moved either way
        self.expired = False

    def close(self) -> None:
        self.writer.close()

    def expire(self) -> None:
        """Cut it off (nothing moved for `connection_timeout`): the read waiting on it ends at once."""
        self.expired = True
        self.writer.transport.abort()


class _NoResponse(Exception):
    """The app closed the connection before a complete response."""


class _ResponseStarted(_NoResponse):
    """... after part of the response went to the client: nothing left to do but drop the connection."""


def _pooled(process: AppProcess) -> _Connection | None:
    now = time.monotonic()
    while process.connections:
        conn = cast(_Connection, process.connections.pop())  # the most recent is the least likely to be stale
        if now - conn.released < IDLE_EXPIRY and not conn.reader.at_eof() and not conn.writer.is_closing():
            conn.last_io = now
            return conn
        conn.close()
    return None


async def _connect(process: AppProcess) -> _Connection:
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(process.address), CONNECT_TIMEOUT)
    return _Connection(reader, writer)


def _request_head(scope: Scope, target: _Target, full_path: bool = False) -> tuple[bytes, str]:
    """The request line and headers for the app, and how the body is framed: "none", "length" or "chunked"."""
    path = target.prefix + target.path if full_path else target.path
    out = [scope["method"].encode(), b" ", path, b" HTTP/1.1\r\n"]
    host = None
    framing = "none"
    for name, value in scope["headers"]:
        if name in _DROP_REQUEST:
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                framing = "chunked"
            continue
        if name == b"cookie":
            kept = headers.app_cookies(value)
            if kept is None:
                continue
            value = kept
        if name == b"host":
            host = value
        elif name == b"content-length":
            framing = "length"
        out += (name, b": ", value, b"\r\n")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}".encode()
        out += (b"host: ", host, b"\r\n")
    if framing == "chunked":
        out.append(b"transfer-encoding: chunked\r\n")
    scheme = scope.get("scheme", "http").encode()
    client = scope.get("client")
    if client:
        out += (b"x-forwarded-for: ", client[0].encode(), b"\r\n")
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    qs = b"?" + scope["query_string"] if scope.get("query_string") else b""
    out += (b"x-forwarded-proto: ", scheme, b"\r\nx-forwarded-host: ", host, b"\r\n")
    out += (b"x-forwarded-prefix: ", target.prefix, b"\r\n")
    viewer = headers.viewer(scope)
    if viewer is not None:
        out += (b"rstudio-connect-credentials: ", viewer, b"\r\n")
    out += (b"x-rsc-request: ", scheme, b"://", host, raw, qs, b"\r\n\r\n")
    return b"".join(out), framing


async def _send_request(
    conn: _Connection, head: bytes, framing: str, receive: Receive, read_timeout: float
) -> bytes | None:
    """Send the request, streaming its body. Returns what was sent when it went in one write (so it can be
    sent again on a fresh connection), b"" when it was streamed, None when the client disconnected."""
    writer = conn.writer
    if framing == "none":
        writer.write(head)
        return head
    loop = asyncio.get_running_loop()
    try:
        # Only the waits for the client count: a slow app reading the body is `connection_timeout`'s business.
        async with asyncio.timeout(read_timeout or None) as deadline:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body, more = message.get("body", b""), message.get("more_body", False)
            if not more:
                payload = head + _frame(body, framing, last=True)
                writer.write(payload)
                return payload
            writer.write(head + _frame(body, framing, last=False))
            while more:
                await writer.drain()
                conn.last_io = time.monotonic()
                if read_timeout:
                    deadline.reschedule(loop.time() + read_timeout)
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body, more = message.get("body", b""), message.get("more_body", False)
                writer.write(_frame(body, framing, last=not more))
            return b""
    except TimeoutError:
        raise ClientSilent(
            f"The request body stopped: nothing came for {read_timeout:g} s (the content's `read_timeout`)."
        ) from None


def _frame(body: bytes, framing: str, last: bool) -> bytes:
    if framing != "chunked":
        return body
    chunk = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
    return chunk + b"0\r\n\r\n" if last else chunk


class _Response:
    """httptools callbacks: the status line and headers, then body pieces as they are parsed."""

    __slots__ = ("parser", "headers", "chunks", "headers_done", "done", "keep_alive")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.done = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True
        # Asked here: once feed_data returns, the parser has reset for the next message and says False.
        self.keep_alive = self.parser.should_keep_alive()


async def _relay(conn: _Connection, head_request: bool, send: Send, receive: Receive, process: AppProcess) -> bool:
    """Relay the app's response to the client as it arrives. True when the connection can be reused."""
    state = _Response()
    parser = state.parser
    reader = conn.reader
    started = False
    client_gone: asyncio.Future[None] | None = None
    try:
        while True:
            data = await reader.read(READ_SIZE)
            conn.last_io = time.monotonic()
            if data:
                parser.feed_data(data)
            elif state.headers_done and not _framed(state.headers):
                state.done = True  # delimited by closing the connection
            else:
                raise _NoResponse("the app closed the connection")
            if not started:
                if not state.headers_done:
                    continue
                if head_request:
                    state.done = state.keep_alive = True  # uvicorn sends no body after a HEAD's headers
                start: Message = {
                    "type": "http.response.start",
                    "status": parser.get_status_code(),
                    "headers": headers.response_headers(state.headers, _DROP_RESPONSE, process.guid, process.bundle_id),
                }
                started = True
                await send(start)
            if state.chunks or state.done:
                body = b"".join(state.chunks)
                state.chunks.clear()
                await send({"type": "http.response.body", "body": body, "more_body": not state.done})
                if state.done:
                    return state.keep_alive
                # A streaming response: notice a client that leaves, so an endless stream is not read for nobody.
                if client_gone is None:
                    client_gone = asyncio.ensure_future(_disconnected(receive))
                elif client_gone.done():
                    return False
    except (OSError, _NoResponse, httptools.HttpParserError) as exc:
        if started:
            raise _ResponseStarted(_describe(exc)) from exc
        raise
    finally:
        if client_gone is not None:
            client_gone.cancel()


def _framed(fields: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-length" or k == b"transfer-encoding" for k, _ in fields)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_redirect(send: Send, location: bytes) -> None:
    answer = [(b"location", location), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 301, "headers": answer})
    await send({"type": "http.response.body", "body": b""})


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no connection within 5 s"
    return str(exc) or type(exc).__name__
