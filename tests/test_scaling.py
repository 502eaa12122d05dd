"""Runtime settings (Connect's process settings per content) through the API and the CLI, and the process pool
they drive: scale to zero and back, a second process under load, warm processes, changes without a redeploy."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import after_data_dir
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

RUNTIME_FIELDS = (
    "min_processes",
    "max_processes",
    "max_conns_per_process",
    "load_factor",
    "idle_timeout",
    "init_timeout",
    "connection_timeout",
    "read_timeout",
)


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-sqlite")) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"))


@pytest.fixture(scope="module")
def pg_pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    """PostgreSQL, for the settings round trip only: no wheels, no rsconnect."""
    with publishing_server("postgresql", tmp_path_factory.mktemp("packyard-postgresql")) as server:
        server.cli("user", "create", "alice", "--role", "publisher")
        key = server.cli("key", "create", "--user", "alice", "-q").stdout.strip()
        yield Publishing(server, key, tmp_path_factory.mktemp("home"))


def new_content(pub: Publishing, name: str) -> str:
    response = pub.api("POST", "/v1/content", json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["guid"]


def runtime(pub: Publishing, guid: str) -> dict[str, Any]:
    content = pub.api("GET", f"/v1/content/{guid}").json()
    return {k: content[k] for k in RUNTIME_FIELDS}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_runtime_settings_round_trip_through_the_api(request: pytest.FixtureRequest, database: str) -> None:
    pub: Publishing = request.getfixturevalue("pub" if database == "sqlite" else "pg_pub")
    guid = new_content(pub, "settings-round-trip")
    assert runtime(pub, guid) == dict.fromkeys(RUNTIME_FIELDS)
    change = {"min_processes": 1, "max_processes": 4, "load_factor": 0.25, "idle_timeout": 2, "read_timeout": 0}
    patched = pub.api("PATCH", f"/v1/content/{guid}", json=change)
    assert patched.status_code == 200, patched.text
    expected = {**dict.fromkeys(RUNTIME_FIELDS), **change}
    assert {k: patched.json()[k] for k in RUNTIME_FIELDS} == expected
    assert runtime(pub, guid) == expected
    # null goes back to the server default
    pub.api("PATCH", f"/v1/content/{guid}", json={"min_processes": None, "load_factor": 1})
    assert runtime(pub, guid) == {**expected, "min_processes": None, "load_factor": 1.0}


LIMIT_HINT = "use a smaller value, or ask an administrator to raise the limit."
BAD_SETTINGS = [
    ({"min_processes": 21}, 45, "`min_processes` is 21, over this server's limit of 20 "
     f"(`[scheduler] min_processes_limit`); {LIMIT_HINT}"),
    ({"max_processes": 21}, 113, "`max_processes` is 21, over this server's limit of 20 "
     f"(`[scheduler] max_processes_limit`); {LIMIT_HINT}"),
    ({"min_processes": 4}, 114, "`min_processes` (4) is more than `max_processes` (3, the server default); "
     "raise `max_processes` in the same change, or lower `min_processes`."),
    ({"min_processes": 3, "max_processes": 2}, 114, "`min_processes` (3) is more than `max_processes` (2); "
     "raise `max_processes` in the same change, or lower `min_processes`."),
    ({"load_factor": 1.5}, 150, "`load_factor` is 1.5; use a number from 0.0 to 1.0, or null for the server default."),
    ({"load_factor": "high"}, 150, "`load_factor` is 'high'; use a number from 0.0 to 1.0, or null for the server "
     "default."),
    ({"idle_timeout": -1}, 151, "`idle_timeout` is -1; use whole seconds from 0 to 2592000 (30 days)."),
    ({"init_timeout": 0}, 151, "`init_timeout` is 0; use whole seconds from 1 to 2592000 (30 days)."),
    ({"read_timeout": 2592001}, 151, "`read_timeout` is 2592001; use whole seconds from 0 to 2592000 (30 days), "
     "where 0 means never."),
    ({"max_conns_per_process": 0}, 25, "`max_conns_per_process` is 0; use 1 or more, or null for the server default."),
    ({"max_processes": "3"}, 25, "`max_processes` is '3'; use a whole number, or null for the server default."),
    ({"title": "Renamed", "max_processes": 2.5}, 25, "`max_processes` is 2.5; use a whole number, or null for the "
     "server default."),
]  # fmt: skip


@pytest.mark.parametrize(("body", "code", "message"), BAD_SETTINGS, ids=[str(b) for b, _, _ in BAD_SETTINGS])
def test_bad_runtime_settings_are_refused_and_nothing_is_stored(
    pub: Publishing, body: dict[str, Any], code: int, message: str
) -> None:
    guid = new_content(pub, f"bad-settings-{abs(hash(json.dumps(body))) % 10**6}")
    before = pub.api("GET", f"/v1/content/{guid}").json()
    response = pub.api("PATCH", f"/v1/content/{guid}", json=body)
    assert (response.status_code, response.json()) == (400, {"error": message, "code": code, "payload": None})
    assert pub.api("GET", f"/v1/content/{guid}").json() == before


def test_runtime_settings_through_the_cli(pub: Publishing) -> None:
    guid = new_content(pub, "settings-cli")
    pub.api("PATCH", f"/v1/content/{guid}", json={"max_processes": 5})
    shown = pub.server.cli("content", "runtime", guid).stdout
    lines = {line.split()[0]: line.rstrip().split(None, 2)[1:] for line in shown.splitlines()[1:]}
    assert lines["max_processes"] == ["5", "content"]
    assert lines["min_processes"] == ["0", "server default (`[scheduler] min_processes`)"]
    assert lines["load_factor"] == ["0.5", "server default (`[scheduler] load_factor`)"]
    assert shown.splitlines()[0].split() == ["SETTING", "VALUE", "FROM"]

    changed = pub.server.cli("content", "runtime", guid, "--min-processes", "2", "--max-processes", "default",
                             "--load-factor", "0.75")  # fmt: skip
    assert "Updated the runtime settings of `settings-cli`" in changed.stderr
    stored = pub.api("GET", f"/v1/content/{guid}").json()
    assert (stored["min_processes"], stored["max_processes"], stored["load_factor"]) == (2, None, 0.75)

    refused = pub.server.cli("content", "runtime", guid, "--min-processes", "9", check=False)
    assert refused.returncode == 1
    assert after_data_dir(refused.stderr).startswith(
        "error: `min_processes` (9) is more than `max_processes` (3, the server default)"
    )
    typo = pub.server.cli("content", "runtime", guid, "--idle-timeout", "5s", check=False)
    assert typo.returncode == 1
    assert "error: `idle_timeout` '5s' is not a whole number; give one, or `default` for the server's." in typo.stderr
    assert pub.api("GET", f"/v1/content/{guid}").json() == stored


def test_a_missing_content_is_named(pub: Publishing) -> None:
    result = pub.server.cli("content", "runtime", "no-such-guid", check=False)
    assert result.returncode == 1 and "No content with GUID or name `no-such-guid`" in result.stderr


# -- the pool, with the FastAPI test app deployed by rsconnect ---------------------------------------------------


@pytest.fixture(scope="module")
def guid(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> str:
    app = copy_app("fastapi-app", tmp_path_factory.mktemp("apps"))
    pub.deploy("fastapi", app)
    return pub.record(app)["app_guid"]


def pids(pub: Publishing, guid: str) -> set[int]:
    """The app's running processes, as the server lists them."""
    jobs = pub.api("GET", f"/v1/content/{guid}/jobs")
    assert jobs.status_code == 200, jobs.text
    return {job["pid"] for job in jobs.json()}


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def settle(pub: Publishing, guid: str, **settings: Any) -> None:
    response = pub.api("PATCH", f"/v1/content/{guid}", json=dict.fromkeys(RUNTIME_FIELDS) | settings)
    assert response.status_code == 200, response.text


def test_scale_to_zero_and_back(pub: Publishing, guid: str) -> None:
    settle(pub, guid, idle_timeout=1)
    first = pub.get(f"/content/{guid}/slow", params={"seconds": 0}).json()["process"]
    (running,) = pids(pub, guid)
    wait_for(lambda: not pids(pub, guid) and gone(running))  # stopped after a second unused
    answer = pub.get(f"/content/{guid}/slow", params={"seconds": 0})
    assert answer.status_code == 200 and answer.json()["process"] != first
    app_log = pub.api("GET", f"/v1/content/{guid}/log").json()["app"]
    assert any(f"Stopping process {running}: no connection for 1 s (`idle_timeout`)." in line for line in app_log)


def pipes(pid: int) -> set[str]:
    """The pipes a process holds open, as /proc names them (`pipe:[<inode>]`, the same for both ends)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("pipe:"):
                found.add(target)
    return found


def test_a_stopped_process_leaves_no_descriptor_of_its_output_in_the_server(pub: Publishing, guid: str) -> None:
    # The server reads an app's output from a pipe. It used to leave its end to the garbage collector, which
    # closed it twice (the file object, then uvloop's transport), the second time closing whatever file had
    # taken the number by then: once SQLite's `-wal`, and every query failed with `disk I/O error`.
    settle(pub, guid, idle_timeout=1)
    assert pub.get(f"/content/{guid}/slow", params={"seconds": 0}).status_code == 200
    (running,) = pids(pub, guid)
    output = os.readlink(f"/proc/{running}/fd/1")
    server = pub.server.process.pid
    assert output.startswith("pipe:") and output in pipes(server)
    wait_for(lambda: not pids(pub, guid) and gone(running))
    wait_for(lambda: output not in pipes(server), seconds=2)


def test_load_above_one_process_starts_a_second_and_no_request_fails(pub: Publishing, guid: str) -> None:
    settle(pub, guid, max_conns_per_process=2, max_processes=3, idle_timeout=30)
    with httpx.Client(headers=pub.headers, timeout=60) as client, ThreadPoolExecutor(12) as pool:
        url = f"{pub.server.url}/content/{guid}/slow"
        answers = list(pool.map(lambda _: client.get(url, params={"seconds": 1.5}), range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    served_by = {a.json()["process"] for a in answers}
    assert len(served_by) >= 2
    assert len(pids(pub, guid)) >= len(served_by)


def test_min_processes_keep_warm_and_changes_apply_without_a_redeploy(pub: Publishing, guid: str) -> None:
    settle(pub, guid, idle_timeout=1)
    wait_for(lambda: not pids(pub, guid))
    # The CLI writes the database; the server follows its change log, and no request comes.
    pub.server.cli("content", "runtime", guid, "--min-processes", "2")
    wait_for(lambda: len(pids(pub, guid)) == 2)
    warm = pids(pub, guid)
    time.sleep(2)  # twice the idle timeout
    assert pids(pub, guid) == warm
    assert pub.get(f"/content/{guid}/slow", params={"seconds": 0}).status_code == 200
    assert pids(pub, guid) == warm  # answered by a warm process: none started for it
    # Back to none kept: both stop once idle.
    settle(pub, guid, idle_timeout=1, min_processes=0)
    wait_for(lambda: not pids(pub, guid) and all(gone(pid) for pid in warm))
