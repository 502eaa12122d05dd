"""Dated snapshots: `/{repo}/{YYYY-MM-DD}/simple/` serves a repository as it stood at the end of that UTC day,
for local and mirrored packages, with pip against the dated index and uv with `--exclude-newer`.

Every file in a test is uploaded today. `backdate` (tests/upstreams.py) moves stored upload times and change-log
entries to earlier days with SQL, then `packyard repo rebuild` re-renders the pages: this stands in for history,
files uploaded and yanked on earlier days."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, pip, run
from tests.dists import make_wheel
from tests.test_install import installed
from tests.test_mirror import JSON, file_url, fresh_client, uv_install
from tests.upstreams import Peers, backdate

TODAY = datetime.now(UTC).date()
D1 = TODAY - timedelta(days=10)  # snap-lib 1.0 uploaded
D1_YANK = TODAY - timedelta(days=8)  # snap-lib 1.0 yanked (unyanked today)
D2 = TODAY - timedelta(days=5)  # snap-lib 2.0 uploaded (yanked today); 3.0 comes today


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def end_of(day: date) -> str:
    return f"{day.isoformat()}T23:59:59Z"


def wheel_name(project: str, version: str) -> str:
    return f"{project.replace('-', '_')}-{version}-py3-none-any.whl"


def dated_page(server: Server, project: str, day: date | str, repo: str = "pypi") -> httpx.Response:
    return httpx.get(f"{server.url}/{repo}/{day}/simple/{project}/", headers={"Accept": JSON}, timeout=30)


def listed(server: Server, project: str, day: date | str) -> dict[str, object]:
    """filename -> its `yanked` value on the page of that date."""
    response = dated_page(server, project, day)
    assert response.status_code == 200, f"{project} @ {day}: {response.status_code} {response.text}"
    return {f["filename"]: f.get("yanked", False) for f in response.json()["files"]}


def rebuild(server: Server) -> None:
    server.cli("repo", "rebuild", "--name", "pypi")
    server.wait_synced()


# Local packages


@pytest.fixture(scope="module")
def history(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    dist = tmp_path_factory.mktemp("snap-dist")
    files = [make_wheel(dist, "snap-lib", v) for v in ("1.0", "2.0", "3.0")]
    server.twine(*files)
    backdate(server, wheel_name("snap-lib", "1.0"), noon(D1))
    backdate(server, wheel_name("snap-lib", "2.0"), noon(D2))
    yank = ("--source", "local-python-src", "--project", "snap-lib")
    server.cli("yank", *yank, "--version", "1.0", "--reason", "bad build")
    backdate(server, wheel_name("snap-lib", "1.0"), noon(D1_YANK), kind="yank")
    server.cli("unyank", *yank, "--version", "1.0")
    server.cli("yank", *yank, "--version", "2.0", "--reason", "regression")
    rebuild(server)
    return server


def test_dated_pages_list_the_files_of_that_day(history: Server) -> None:
    v1, v2, v3 = (wheel_name("snap-lib", v) for v in ("1.0", "2.0", "3.0"))
    assert listed(history, "snap-lib", D1).keys() == {v1}
    assert listed(history, "snap-lib", D2).keys() == {v1, v2}
    assert listed(history, "snap-lib", TODAY).keys() == {v1, v2, v3}
    assert listed(history, "snap-lib", "latest").keys() == {v1, v2, v3}
    # Before its first upload the project did not exist.
    assert dated_page(history, "snap-lib", D1 - timedelta(days=1)).status_code == 404


def test_dated_root_page_lists_the_names_of_that_day(history: Server) -> None:
    root = httpx.get(f"{history.url}/pypi/{D1}/simple/", headers={"Accept": JSON}, timeout=30)
    assert root.status_code == 200
    assert "snap-lib" in {p["name"] for p in root.json()["projects"]}
    before = httpx.get(f"{history.url}/pypi/{D1 - timedelta(days=1)}/simple/", headers={"Accept": JSON}, timeout=30)
    assert before.status_code == 200
    assert "snap-lib" not in {p["name"] for p in before.json()["projects"]}


def test_yanks_as_they_stood(history: Server) -> None:
    v1, v2 = wheel_name("snap-lib", "1.0"), wheel_name("snap-lib", "2.0")
    # 1.0: yanked on D1_YANK, unyanked today. 2.0: yanked today.
    assert listed(history, "snap-lib", D1)[v1] is False
    assert listed(history, "snap-lib", D2) == {v1: "bad build", v2: False}
    latest = listed(history, "snap-lib", "latest")
    assert latest[v1] is False and latest[v2] == "regression"
    html = httpx.get(f"{history.url}/pypi/{D2}/simple/snap-lib/", headers={"Accept": "text/html"}, timeout=30).text
    assert 'data-yanked="bad build"' in html and html.count("data-yanked") == 1


def test_pip_against_a_dated_index(history: Server, tmp_path: Path, client_env: dict[str, str]) -> None:
    for day, version in ((D1, "1.0"), (D2, "2.0"), ("latest", "3.0")):
        client = fresh_client(tmp_path, client_env, f"pip-{day}")
        run(pip(client.venv, "install", "--index-url", f"{history.url}/pypi/{day}/simple/", "snap-lib"), client.env)
        assert installed(client.venv, client.env) == {"snap-lib": version}, day


def test_uv_against_a_dated_index_and_exclude_newer(
    history: Server, tmp_path: Path, client_env: dict[str, str]
) -> None:
    client = fresh_client(tmp_path, client_env, "uv-dated")
    uv_install(client, f"{history.url}/pypi/{D2}/simple/", "snap-lib")
    assert installed(client.venv, client.env) == {"snap-lib": "2.0"}
    for cutoff, version in ((D1, "1.0"), (D2, "1.0")):
        # `--exclude-newer` on `latest` filters by upload-time but sees today's yanks: 2.0 is yanked now, so at D2
        # uv takes 1.0 where the D2 snapshot (above) gives 2.0.
        client = fresh_client(tmp_path, client_env, f"uv-{cutoff}")
        uv_install(client, history.index, "--exclude-newer", end_of(cutoff), "snap-lib")
        assert installed(client.venv, client.env) == {"snap-lib": version}, cutoff


def test_dated_file_urls(history: Server) -> None:
    v2, v3 = wheel_name("snap-lib", "2.0"), wheel_name("snap-lib", "3.0")
    latest_v3 = file_url(history, "snap-lib", v3)
    dated_v3 = latest_v3.replace("/pypi/latest/", f"/pypi/{D2}/")
    assert httpx.get(latest_v3, timeout=30).status_code == 200
    assert httpx.get(dated_v3, timeout=30).status_code == 404
    assert httpx.get(dated_v3 + ".metadata", timeout=30).status_code == 404
    dated_v2 = file_url(history, "snap-lib", v2, prefix=str(D2))
    assert httpx.get(dated_v2, timeout=30).status_code == 200
    assert httpx.get(dated_v2 + ".metadata", timeout=30).status_code == 200


def test_transaction_dates(history: Server) -> None:
    response = httpx.get(f"{history.url}/__api__/repos/pypi/transaction-dates", timeout=30)
    assert response.status_code == 200
    assert response.json() == [{"alias": d.isoformat()} for d in (D1, D1_YANK, D2, TODAY)]


@pytest.mark.parametrize(
    "day", [TODAY + timedelta(days=1), date(2999, 1, 1), "2026-02-30", "2026-1-5", "yesterday"], ids=str
)
def test_future_and_invalid_dates_are_404(history: Server, day: date | str) -> None:
    assert httpx.get(f"{history.url}/pypi/{day}/simple/", timeout=30).status_code == 404
    assert dated_page(history, "snap-lib", day).status_code == 404


# Mirrored packages: the upstream's `upload-time` is the upload time


@dataclass
class MirroredHistory:
    upstream: Server
    mirror: Server


@pytest.fixture(scope="module")
def mirrored_history(module_peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirroredHistory]:
    dist = tmp_path_factory.mktemp("snap-mirror-dist")
    files = [make_wheel(dist, "snap-mir", v) for v in ("1.0", "2.0", "3.0")]
    upstream = module_peers.packyard(files).server
    backdate(upstream, wheel_name("snap-mir", "1.0"), noon(D1))
    backdate(upstream, wheel_name("snap-mir", "2.0"), noon(D2))
    rebuild(upstream)
    mirror = module_peers.mirror(upstream.index, index_ttl=1)
    yield MirroredHistory(upstream, mirror)


def test_mirrored_dated_pages_follow_upstream_upload_time(mirrored_history: MirroredHistory) -> None:
    mirror = mirrored_history.mirror
    v1, v2, v3 = (wheel_name("snap-mir", v) for v in ("1.0", "2.0", "3.0"))
    # The first request for this name is a dated one: the mirror fetches the page and filters it.
    assert listed(mirror, "snap-mir", D1).keys() == {v1}
    assert listed(mirror, "snap-mir", D2).keys() == {v1, v2}
    assert listed(mirror, "snap-mir", "latest").keys() == {v1, v2, v3}
    dated_v3 = file_url(mirror, "snap-mir", v3).replace("/pypi/latest/", f"/pypi/{D2}/")
    assert httpx.get(dated_v3, timeout=30).status_code == 404


def test_mirrored_installs_of_a_date(
    mirrored_history: MirroredHistory, tmp_path: Path, client_env: dict[str, str]
) -> None:
    mirror = mirrored_history.mirror
    client = fresh_client(tmp_path, client_env, "pip-mirror")
    run(pip(client.venv, "install", "--index-url", f"{mirror.url}/pypi/{D1}/simple/", "snap-mir"), client.env)
    assert installed(client.venv, client.env) == {"snap-mir": "1.0"}
    client = fresh_client(tmp_path, client_env, "uv-mirror")
    uv_install(client, mirror.index, "--exclude-newer", end_of(D2), "snap-mir")
    assert installed(client.venv, client.env) == {"snap-mir": "2.0"}
    client = fresh_client(tmp_path, client_env, "uv-mirror-dated")
    uv_install(client, f"{mirror.url}/pypi/{D1}/simple/", "snap-mir")
    assert installed(client.venv, client.env) == {"snap-mir": "1.0"}


def test_upstream_yank_seen_today_is_not_in_earlier_snapshots(mirrored_history: MirroredHistory) -> None:
    upstream, mirror = mirrored_history.upstream, mirrored_history.mirror
    v2 = wheel_name("snap-mir", "2.0")
    assert listed(mirror, "snap-mir", "latest")[v2] is False
    upstream.cli("yank", "--source", "local-python-src", "--project", "snap-mir", "--version", "2.0", "--reason", "cve")
    upstream.wait_synced()
    time.sleep(1.5)  # the mirror runs with `index_ttl = 1`: its cached page is revalidated on the next request
    assert listed(mirror, "snap-mir", "latest")[v2] == "cve"
    assert listed(mirror, "snap-mir", D2)[v2] is False


def test_mirrored_transaction_dates(mirrored_history: MirroredHistory) -> None:
    listed(mirrored_history.mirror, "snap-mir", "latest")
    response = httpx.get(f"{mirrored_history.mirror.url}/__api__/repos/pypi/transaction-dates", timeout=30)
    assert response.status_code == 200
    dates = [entry["alias"] for entry in response.json()]
    assert dates == sorted(dates)
    assert {D1.isoformat(), D2.isoformat()} <= set(dates)
