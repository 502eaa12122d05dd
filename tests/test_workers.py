"""`packyard run --workers 2` on PostgreSQL: both workers answer on one port, `/metrics` sums them, a change made
through one holds on the other within a second, a worker killed with -9 is replaced; SQLite refuses workers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BIN, Server, _start, fresh_database, pip, run
from tests.dists import make_wheel
from tests.publishing import copy_app, setup_publishing

WORKERS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fresh_database("postgresql") as url:
        srv = _start(tmp_path_factory.mktemp("workers"), url, {"PACKYARD_SERVER_WORKERS": str(WORKERS)})
        try:
            yield srv
        finally:
            srv.stop()


def metrics(server: Server, token: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def answered(server: Server, token: str) -> dict[int, float]:
    """Requests each live worker answered, by PID, as `/metrics` sums them (every worker's figures)."""
    found = metrics(server, token)
    by_pid = {
        int(dict(labels)["pid"]): value for (name, labels), value in found.items() if name.endswith("requests_total")
    }
    return {pid: value for pid, value in by_pid.items() if _child_of(pid, server.process.pid)}


def _child_of(pid: int, parent: int) -> bool:
    """Whether `pid` is alive and a child of `parent` (the `packyard run` whose supervisor spawned it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == parent


def hammer(url: str, count: int, headers: dict[str, str] | None = None) -> list[int]:
    """`count` requests, each on a new connection, 16 at a time: the kernel hands connections to both workers."""

    def one(_: int) -> int:
        return httpx.get(url, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def until_both_answer(server: Server, token: str, url: str, headers: dict[str, str] | None = None) -> dict[int, float]:
    """Requests until each of the workers has answered some (a worker still starting answers none yet)."""
    deadline = time.monotonic() + 60
    while True:
        assert set(hammer(url, 32, headers)) == {200}
        time.sleep(0.6)  # each worker saves its figures every half second
        seen = answered(server, token)
        if len([v for v in seen.values() if v > 0]) >= WORKERS or time.monotonic() > deadline:
            return seen


def test_sqlite_refuses_workers(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "packyard"), "run", "--data-dir", str(tmp_path / "data"), "--workers", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "error: 2 worker processes (`--workers`) need PostgreSQL" in result.stderr
    assert "set `[database] url`" in result.stderr


def test_both_workers_answer_and_metrics_sum_them(server: Server) -> None:
    admin = server.token("--scope", "admin")
    seen = until_both_answer(server, admin, f"{server.url}/__ping__")
    assert len(seen) == WORKERS and all(value > 0 for value in seen.values()), seen
    found = metrics(server, admin)
    pings = found[("packyard_http_request_duration_seconds_count", frozenset({("family", "other"), ("status", "2xx")}))]
    assert pings >= 32, "the sum of both workers' requests, not one worker's"
    assert sum(seen.values()) <= sum(v for (n, _), v in found.items() if n == "packyard_worker_requests_total")


def test_an_upload_reaches_every_workers_pages_and_installs(
    server: Server, tmp_path: Path, venv: Path, client_env: dict[str, str]
) -> None:
    server.twine(make_wheel(tmp_path, "worker-demo", "1.0"))
    # Pages come from each worker's cache, which follows the change log: every worker has it within a second.
    time.sleep(1.0)
    assert set(hammer(f"{server.index}worker-demo/", 32)) == {200}
    run(pip(venv, "install", "--index-url", server.index, "worker-demo"), client_env)
    assert (venv / "lib").exists() and list(venv.glob("lib/python*/site-packages/worker_demo/__init__.py"))


def test_revoked_token_is_refused_by_every_worker_within_a_second(server: Server) -> None:
    admin = server.token("--scope", "admin")
    doomed = server.cli("token", "create", "-q", "--scope", "admin", "--description", "doomed").stdout.strip()
    bearer = {"Authorization": f"Bearer {doomed}"}
    until_both_answer(server, admin, f"{server.url}/metrics", bearer)  # both workers have `doomed` cached as valid
    before = answered(server, admin)
    server.cli("token", "revoke", jwt.decode(doomed, options={"verify_signature": False})["jti"])
    time.sleep(1.0)
    statuses = hammer(f"{server.url}/metrics", 64, bearer)
    assert set(statuses) == {401}, statuses
    time.sleep(0.6)
    after = answered(server, admin)
    assert all(after.get(pid, 0) > value for pid, value in before.items()), (before, after)


def test_a_killed_worker_is_replaced(server: Server) -> None:
    admin = server.token("--scope", "admin")
    victim = min(until_both_answer(server, admin, f"{server.url}/__ping__"))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        assert set(hammer(f"{server.url}/__ping__", 8)) == {200}  # the other worker serves meanwhile
        time.sleep(1.0)
        seen = answered(server, admin)
        replaced = victim not in seen and len([v for v in seen.values() if v > 0]) >= WORKERS
        if replaced or time.monotonic() > deadline:
            break
    assert replaced, f"no replacement for worker {victim} answered: {seen}"
    assert server.process.poll() is None


def test_a_busy_port_is_refused_before_any_worker_starts(server: Server) -> None:
    command = [str(BIN / "packyard"), "run", "--data-dir", str(server.data_dir), "--workers", "2"]
    result = subprocess.run(
        [*command, "--port", str(server.port)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        timeout=60,
    )
    assert result.returncode == 1
    assert f"error: Port {server.port} on `127.0.0.1` is already in use" in result.stderr
    assert "Started parent process" not in result.stdout + result.stderr


def test_rsconnect_deploys_to_two_workers(server: Server, tmp_path: Path) -> None:
    """rsconnect's draft, verification, activation and task polls each reach whichever worker accepts them."""
    publisher = setup_publishing(server, tmp_path / "home", wheels=None)
    site = copy_app("html-site", tmp_path)
    for _ in range(2):  # the second is a redeploy, whose draft one worker serves while the other serves the first
        result = publisher.deploy("html", site)
        assert "Deployment completed successfully." in result.stdout + result.stderr, result.stdout + result.stderr
    guid = publisher.record(site)["app_guid"]
    headers = {"Authorization": f"Key {publisher.key}"}
    assert set(hammer(f"{server.url}/content/{guid}/", 32, headers)) == {200}
