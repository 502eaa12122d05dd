"""Run the server with uvicorn, on a socket bound before anything says it listens."""

from __future__ import annotations

import gc
import os
import socket
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from packyard.app import create_app
from packyard.config import Settings
from packyard.http_errors import install_reason_phrases
from packyard.tls import uvicorn_options
from packyard.workers import WorkerApp, metrics_folder, preflight


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


WORKER_HEALTHCHECK_TIMEOUT = 30  # seconds


def serve(settings: Settings, sock: socket.socket) -> None:
    if settings.server.workers > 1:
        return serve_workers(settings, sock)
    install_reason_phrases()
    app = create_app(settings)
    # Everything built at startup lives for the whole process; keeping it out of the collector's
    # generations removes most GC pauses from the request path (p99 latency).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(_config(settings, app))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # it has logged why


def serve_workers(settings: Settings, sock: socket.socket) -> None:
    """`--workers N`: checks and migrations once here, then uvicorn's supervisor spawns N workers on `sock`,
    replaces any that dies, and stops them all on SIGTERM or SIGINT (workers.py)."""
    preflight(settings)
    # Read by prometheus_client when each spawned worker imports it: its metrics become files in this folder.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_folder(settings))
    config = _config(
        settings,
        WorkerApp(settings),
        factory=True,
        workers=settings.server.workers,
        # A new worker answers the supervisor's pings only once it has imported the server, which took over 5 s
        # (uvicorn's default) on a busy 2-core machine: the supervisor then killed each replacement as hung.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
    )
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        sys.exit(STARTUP_FAILURE)  # a worker could not start; its log says why


def _config(settings: Settings, app: object, **options: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        access_log=settings.server.access_log,
        log_level="info",
        proxy_headers=True,
        server_header=False,
        http="httptools",
        loop="uvloop",
        ws="wsproto",  # see pyproject.toml: its refusals of websocket handshakes log no false error
        # HTTPS: every worker loads the certificate itself (uvicorn's Config.load), on the socket the parent bound.
        **uvicorn_options(settings),
        **options,  # type: ignore[arg-type]
    )
