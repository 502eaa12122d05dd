"""HTTP/1.1 by hand over a socket, for requests no client library sends: a body that stops half way and waits, or a
Content-Length far larger than what follows. The answer is read while the request is still unfinished."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# Long enough for a loaded machine, short enough that a server waiting for the rest of the body fails the test.
ANSWER_TIMEOUT = 30


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def unfinished_request(
    url: str, headers: dict[str, str], parts: Iterable[bytes], *, chunked: bool, source: str = ""
) -> RawResponse:
    """POST `url` with these body parts (as chunks when `chunked`), never finish the body, and read the answer.

    With `chunked` the closing zero-length chunk is never sent; otherwise the Content-Length in `headers` is meant
    to be larger than the parts. `source` binds the client's side to that address (e.g. `127.0.0.2`)."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    lines = [f"POST {split.path or '/'}{'?' + split.query if split.query else ''} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    with socket.create_connection(
        (host, port), timeout=ANSWER_TIMEOUT, source_address=(source, 0) if source else None
    ) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for part in parts:
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        received = sock.recv(65536)
        if not received:
            raise ConnectionError(f"the server closed the connection before answering; it sent {data!r}")
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        received = sock.recv(65536)
        if not received:
            break
        body += received
    return RawResponse(int(status_line.split()[1]), headers, body[:length])
