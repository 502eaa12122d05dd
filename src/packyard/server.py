"""Run the server with uvicorn."""

from __future__ import annotations

import gc

import uvicorn

from packyard.app import create_app
from packyard.config import Settings
from packyard.http_errors import install_reason_phrases


def serve(settings: Settings) -> None:
    install_reason_phrases()
    app = create_app(settings)
    # Everything built at startup lives for the whole process; keeping it out of the collector's
    # generations removes most GC pauses from the request path (p99 latency).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log=settings.server.access_log,
        log_level="info",
        proxy_headers=True,
        server_header=False,
        http="httptools",
        loop="uvloop",
        ws="wsproto",  # see pyproject.toml: its refusals of websocket handshakes log no false error
    )
