"""`/__health__` for load balancers and `/metrics` for Prometheus, against real servers and real outages: a
PostgreSQL database refusing connections, a blob folder gone; and counters moved by real twine, pip, rsconnect
and a request to deployed content."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PG_ADMIN_URL, Server, _start, fresh_database, pip, run, uv_bin
from tests.dists import make_wheel
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing
from tests.upstreams import Peers

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def health(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/__health__", timeout=10)


def wait_for_status(server: Server, status: int, seconds: float = 15) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while (response := health(server)).status_code != status:
        assert time.monotonic() < deadline, f"health stayed {response.status_code}: {response.text}"
        time.sleep(0.2)
    return response


def test_health_is_ok_fast_anonymous_and_reveals_no_paths(server: Server) -> None:
    health(server)  # the first poll opens the database connection
    started = time.monotonic()
    response = health(server)
    assert time.monotonic() - started < 0.5
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert document["status"] == "ok"
    assert {name: check["status"] for name, check in document["checks"].items()} == {"database": "ok", "storage": "ok"}
    assert str(server.data_dir) not in response.text
    head = httpx.head(f"{server.url}/__health__", timeout=10)
    assert (head.status_code, head.content) == (200, b"")
    assert httpx.get(f"{server.url}/__ping__", timeout=10).text == "OK\n"  # unchanged


def test_health_fails_while_the_blob_folder_is_gone_and_recovers(server: Server) -> None:
    blobs = server.data_dir / "blobs"
    moved = server.data_dir / "blobs-away"
    blobs.rename(moved)
    try:
        response = wait_for_status(server, 503)
        checks = response.json()["checks"]
        assert response.json()["status"] == "failing"
        assert checks["storage"] == {**checks["storage"], "status": "failing", "error": "BlobNotFound"}
        assert checks["database"]["status"] == "ok"
        assert str(server.data_dir) not in response.text
        assert httpx.head(f"{server.url}/__health__", timeout=10).status_code == 503
    finally:
        moved.rename(blobs)
    assert wait_for_status(server, 200).json()["status"] == "ok"  # no restart


def _database_connections(name: str, allow: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:  # and end the server's pooled connections, as a PostgreSQL restart does
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


@pytest.fixture(scope="module")
def postgresql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own on PostgreSQL: an outage of the database server is a PostgreSQL matter (SQLite is a
    file in the data folder)."""
    with fresh_database("postgresql") as url:
        server = _start(tmp_path_factory.mktemp("packyard-pg-outage"), url)
        try:
            yield server
        finally:
            server.stop()


def test_health_fails_while_postgresql_refuses_the_database_and_recovers(postgresql_server: Server) -> None:
    server = postgresql_server
    name = server.database_url.rsplit("/", 1)[1]
    _database_connections(name, allow=False)
    try:
        started = time.monotonic()
        response = wait_for_status(server, 503)
        assert time.monotonic() - started < 5
        checks = response.json()["checks"]
        assert checks["database"]["status"] == "failing"
        assert checks["database"]["error"] == "OperationalError"
        assert checks["storage"]["status"] == "ok"
        assert name not in response.text and "127.0.0.1" not in response.text
    finally:
        _database_connections(name, allow=True)
    assert wait_for_status(server, 200).json()["status"] == "ok"


# -- /metrics ------------------------------------------------------------------------------------------------


def scrape(server: Server, token: str) -> Samples:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include these."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-metrics")) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"))


def test_metrics_are_for_administrators_only(pub: Publishing) -> None:
    server = pub.server
    url = f"{server.url}/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    reader = server.token("--scope", "repos:read", "--repos", "pypi")
    refused = httpx.get(url, headers={"Authorization": f"Bearer {reader}"}, timeout=10)
    assert refused.status_code == 403
    assert "--scope admin" in refused.text
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=10).status_code == 401
    # a publisher's API key is not enough; an administrator's is
    assert httpx.get(url, headers=pub.headers, timeout=10).status_code == 403
    server.cli("user", "create", "root-admin", "--role", "admin")
    admin_key = server.cli("key", "create", "--user", "root-admin", "-q").stdout.strip()
    allowed = httpx.get(url, headers={"Authorization": f"Key {admin_key}"}, timeout=10)
    assert allowed.status_code == 200
    assert "packyard_http_request_duration_seconds" in allowed.text


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_uploads_installs_and_content_move_their_counters(
    pub: Publishing, tmp_path: Path, client_env: dict[str, str], venv: Path
) -> None:
    server = pub.server
    admin = server.token("--scope", "admin")
    count = "packyard_http_request_duration_seconds_count"
    before = scrape(server, admin)

    wheel = make_wheel(tmp_path / "dist", "metric-probe", "1.0")
    server.twine(wheel)
    assert server.twine(wheel, token=server.token("--scope", "repos:read", "--repos", "pypi"), check=False).returncode
    run(pip(venv, "install", "-q", "--index-url", server.index, "metric-probe"), client_env)
    uploaded = scrape(server, admin)
    assert _moved(before, uploaded, "packyard_uploads_total", outcome="stored") == 1
    assert _moved(before, uploaded, "packyard_upload_bytes_total") == wheel.stat().st_size
    assert _moved(before, uploaded, "packyard_upload_rejects_total", status="403") == 1
    assert _moved(before, uploaded, count, family="upload", status="2xx") == 1
    assert _moved(before, uploaded, count, family="upload", status="4xx") == 1
    assert _moved(before, uploaded, count, family="simple", status="2xx") >= 1
    assert _moved(before, uploaded, count, family="files", status="2xx") >= 1
    assert _moved(before, uploaded, "packyard_page_cache_lookups_total") >= 1
    # A histogram's buckets: the page requests all took under 10 s
    assert total(uploaded, "packyard_http_request_duration_seconds_bucket", family="simple", le="10.0") == total(
        uploaded, count, family="simple"
    )

    app = copy_app("fastapi-app", tmp_path / "apps")
    pub.deploy("fastapi", app)
    guid = pub.record(app)["app_guid"]
    answered = pub.get(f"/content/{guid}/")
    assert answered.status_code == 200, answered.text
    deployed = scrape(server, admin)
    # rsconnect deploys a draft, then activates it: two tasks
    assert _moved(uploaded, deployed, "packyard_deploys_total", result="started") == 2
    assert _moved(uploaded, deployed, "packyard_deploys_total", result="succeeded") == 2
    assert _moved(uploaded, deployed, "packyard_deploys_total", result="failed") == 0
    prepared = _moved(uploaded, deployed, "packyard_environment_prepares_total")
    assert prepared >= 1
    assert _moved(uploaded, deployed, "packyard_environment_prepares_total", result="failed") == 0
    assert _moved(uploaded, deployed, count, family="content", status="2xx") >= 1
    assert _moved(uploaded, deployed, count, family="api", status="2xx") >= 1
    assert value(deployed, "packyard_content_processes", guid=guid) >= 1
    # No raw path becomes a label
    assert not any(guid in dict(labels).get("family", "") for _name, labels in deployed)


def test_request_families_never_carry_raw_paths(pub: Publishing) -> None:
    server = pub.server
    for path in ("/nothing/here", "/pypi/latest/simple/no-such-name/", "/repos/", "/__api__/server_settings"):
        httpx.get(f"{server.url}{path}", timeout=10)
    families = {dict(labels)["family"] for name, labels in scrape(server, server.token("--scope", "admin")) if
                name == "packyard_http_request_duration_seconds_count"}  # fmt: skip
    assert families <= {"simple", "files", "upload", "content", "api", "pages", "other"}


def test_mirror_counts_upstream_fetches_once_and_serves_again_from_its_cache(
    peers: Peers, tmp_path: Path, client_env: dict[str, str]
) -> None:
    wheel = make_wheel(tmp_path / "dist", "mirror-probe", "1.0")
    upstream = peers.pypiserver([wheel])
    mirror = peers.mirror(upstream.index)
    admin = mirror.token("--scope", "admin")
    before = scrape(mirror, admin)
    for attempt in ("first", "second"):
        target = tmp_path / attempt
        run([str(uv_bin()), "venv", "-q", "--python", sys.executable, str(target)], client_env)
        run(pip(target, "install", "-q", "--index-url", mirror.index, "mirror-probe"), client_env)
    for _ in range(3):  # the first read after the mirror's change loads the page into memory again
        assert httpx.get(f"{mirror.index}mirror-probe/", timeout=10).status_code == 200
    after = scrape(mirror, admin)
    assert _moved(before, after, "packyard_mirror_page_lookups_total", result="fetched") == 1
    assert _moved(before, after, "packyard_mirror_file_downloads_total", result="started") == 1
    assert _moved(before, after, "packyard_page_cache_lookups_total", result="hit") >= 1
