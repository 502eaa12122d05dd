"""The upstream peers the mirror tests rely on: they serve, stop, come back on the same port, count requests."""

from __future__ import annotations

import hashlib
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import Server
from tests.dists import make_wheel
from tests.upstreams import Peers, Upstream, backdate, blackhole


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "dist", "peer-pkg", "1.0")


@pytest.mark.parametrize("kind", ["pypiserver", "packyard"])
def test_upstream_serves_stops_restarts_and_counts(peers: Peers, wheel: Path, kind: str) -> None:
    upstream: Upstream = peers.pypiserver([wheel]) if kind == "pypiserver" else peers.packyard([wheel])
    page = httpx.get(f"{upstream.index}peer-pkg/", timeout=5)
    assert page.status_code == 200
    assert f"sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}" in page.text
    assert httpx.get(f"{upstream.index}not-there/", timeout=5).status_code == 404
    assert "/simple/peer-pkg/" in upstream.requests()[-2]

    port = upstream.port
    upstream.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{upstream.index}peer-pkg/", timeout=5)
    upstream.restart()
    assert upstream.port == port
    before = len(upstream.requests())
    assert httpx.get(f"{upstream.index}peer-pkg/", timeout=5).status_code == 200
    assert len(upstream.requests()) == before + 1, "the log goes on across a restart"


def test_pypiserver_pages_are_html_with_root_relative_links(peers: Peers, wheel: Path) -> None:
    """What a mirror of pypiserver has to cope with (pypiserver 2.4)."""
    upstream = peers.pypiserver([wheel])
    page = httpx.get(f"{upstream.index}peer-pkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/packages/peer_pkg-1.0-py3-none-any.whl#sha256=' in page.text
    assert "etag" not in page.headers
    file_url = f"{upstream.index.removesuffix('/simple/')}/packages/{wheel.name}"
    assert httpx.get(file_url).content == wheel.read_bytes()
    assert httpx.get(file_url + ".metadata").status_code == 404
    # A name that is not normalized is redirected, not served.
    assert httpx.get(f"{upstream.index}Peer_Pkg/").status_code == 301


def test_blackhole_accepts_and_never_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with blackhole(port) as hole:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"http://127.0.0.1:{port}/simple/x/", timeout=1)
        assert 0.9 < time.monotonic() - started < 3
        assert hole.accepted == 1


def test_backdate_moves_upload_time_and_its_event(peers: Peers, wheel: Path) -> None:
    upstream = peers.packyard([wheel])
    server: Server = upstream.server
    when = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    backdate(server, wheel.name, when)
    engine = sa.create_engine(server.sql_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT uploaded_at FROM files WHERE filename = :f"), {"f": wheel.name})
            assert str(stored.scalar_one()).startswith("2026-01-15 12:00:00")
            event = conn.execute(
                sa.text("SELECT at FROM events WHERE kind = 'upload' AND filename = :f"), {"f": wheel.name}
            )
            assert str(event.scalar_one()).startswith("2026-01-15 12:00:00")
    finally:
        engine.dispose()
