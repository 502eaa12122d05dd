"""Run the server with uvicorn, on a socket bound before anything says it listens."""

from __future__ import annotations

import gc
import socket
import sys

import uvicorn

from packyard.app import create_app
from packyard.config import Settings
from packyard.http_errors import install_reason_phrases


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (as uvicorn binds one); raises `OSError`, e.g. when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(settings: Settings, sock: socket.socket) -> None:
    install_reason_phrases()
    app = create_app(settings)
    # Everything built at startup lives for the whole process; keeping it out of the collector's
    # generations removes most GC pauses from the request path (p99 latency).
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(
        app,
        access_log=settings.server.access_log,
        log_level="info",
        proxy_headers=True,
        server_header=False,
        http="httptools",
        loop="uvloop",
        ws="wsproto",  # see pyproject.toml: its refusals of websocket handshakes log no false error
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE; it has logged why
