"""A publisher's code reaches nothing but its own content: a probe app deployed with the real rsconnect tries every
way out of its sandbox, and each one fails, on SQLite and PostgreSQL."""

from __future__ import annotations

import glob
import html
import io
import json
import os
import pwd
import re
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import web_user
from tests.conftest import Server
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

SERVER_SECRET = "server-only-4f1c9a"  # in the server's own environment
VICTIM_SECRET = "victim-only-77d2e0"  # a variable of another publisher's content


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    data_dir = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with publishing_server(request.param, data_dir, {"HOSTILE_MARKER": SERVER_SECRET}) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"))


@pytest.fixture(scope="module")
def victim(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> str:
    app = copy_app("fastapi-app", tmp_path_factory.mktemp("victim"))
    pub.deploy("fastapi", app, "-E", f"GREETING={VICTIM_SECRET}")
    guid = pub.record(app)["app_guid"]
    assert pub.get(f"/content/{guid}/greeting").json()["greeting"] == VICTIM_SECRET
    return str(guid)


@pytest.fixture(scope="module")
def probe(pub: Publishing, victim: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    app = copy_app("probe-app", tmp_path_factory.mktemp("probe"))
    pub.deploy("fastapi", app)
    return str(pub.record(app)["app_guid"])


def ask(pub: Publishing, guid: str, route: str, **params: Any) -> Any:
    response = pub.get(f"/content/{guid}/{route}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def refused(result: dict[str, Any]) -> bool:
    return result["ok"] is False


def test_it_runs_unprivileged_with_its_own_home_and_variables(pub: Publishing, probe: str) -> None:
    seen = ask(pub, probe, "identity")
    if os.geteuid() == 0:
        assert seen["uid"] == pwd.getpwnam("packyard-content").pw_uid != 0
    assert seen["home"] != os.environ.get("HOME")
    assert not any(name.startswith("PACKYARD_") or name == "HOSTILE_MARKER" for name in seen["environ"])
    assert SERVER_SECRET not in json.dumps(seen)
    # Its own PID namespace: bubblewrap, the app, and nothing of the server or other content.
    assert len(seen["pids"]) < 10


def test_the_data_directory_and_the_servers_home_are_out_of_reach(pub: Publishing, probe: str) -> None:
    data = pub.server.data_dir
    for name in ("token-secret", "encryption-key", "packyard.toml", "packyard.db", "server.log"):
        assert refused(ask(pub, probe, "read", path=str(data / name))), name
        assert refused(ask(pub, probe, "write", path=str(data / name))), name
    # Its own bundle and environment are mounted at their paths on the host: the folders above them exist in
    # the sandbox, empty but for the way down to its own.
    assert set(ask(pub, probe, "list", path=str(data))["value"]) <= {"apps", "environments"}
    assert ask(pub, probe, "list", path=str(data / "apps"))["value"] == [probe]
    assert len(ask(pub, probe, "list", path=str(data / "environments"))["value"]) == 1
    for folder in (data / "blobs", data / "cache"):
        assert refused(ask(pub, probe, "list", path=str(folder))), folder
    # The server's HOME shows nothing but the way to the interpreter, when that lives there (pyenv).
    home = Path.home()
    shown = ask(pub, probe, "list", path=str(home))
    interpreter = Path(sys.base_prefix)
    way = {interpreter.relative_to(home).parts[0]} if interpreter.is_relative_to(home) else set()
    assert refused(shown) or set(shown["value"]) <= way, shown
    assert refused(ask(pub, probe, "write", path=str(data / "planted")))
    assert not (data / "planted").exists()
    # The sign-in it would have forged is still a publisher's.
    assert pub.api("GET", "/v1/user").json()["user_role"] == "publisher"


def test_another_contents_files_environ_and_process_are_out_of_reach(pub: Publishing, probe: str, victim: str) -> None:
    assert victim not in ask(pub, probe, "list", path=str(pub.server.data_dir / "apps"))["value"]
    bundles = sorted((pub.server.data_dir / "apps" / victim).glob("*/app.py"))
    assert bundles, "the victim's bundle is on the host"
    assert refused(ask(pub, probe, "read", path=str(bundles[0])))
    environs = ask(pub, probe, "environs")
    assert VICTIM_SECRET not in json.dumps(environs)
    assert SERVER_SECRET not in json.dumps(environs)
    # Its socket, by the path the server bound it at: the probe cannot even see it.
    sockets = glob.glob("/tmp/packyard-apps-*/*.sock")
    assert sockets
    for address in sockets:
        assert refused(ask(pub, probe, "connect", address=address)), address
    # Nothing of it listens on TCP: the proxy is the only way in, and the server's own port is a front door.
    assert pub.get(f"/content/{victim}/greeting").json()["greeting"] == VICTIM_SECRET


def test_the_shared_environment_is_read_only(pub: Publishing, probe: str, victim: str) -> None:
    result = ask(pub, probe, "site-packages")
    assert refused(result)
    assert "Read-only file system" in result["error"]
    assert pub.get(f"/content/{victim}/").status_code == 200  # the victim shares that environment


def test_a_fork_bomb_is_stopped_and_everything_else_keeps_serving(pub: Publishing, probe: str, victim: str) -> None:
    report = ask(pub, probe, "fork-bomb")
    forks, stopped_by = report["stdout"].split()
    assert stopped_by == "BlockingIOError", report  # EAGAIN: the sandbox's process limit
    assert int(forks) < 512  # `[scheduler] process_limit`, the app's own threads included
    assert pub.get(f"/content/{victim}/").status_code == 200
    assert pub.get("/__ping__").status_code == 200


def test_a_memory_hog_is_stopped_and_everything_else_keeps_serving(pub: Publishing, probe: str, victim: str) -> None:
    result = ask(pub, probe, "hog", gib=6)
    assert refused(result)
    assert result["error"].startswith("MemoryError")
    assert pub.get(f"/content/{victim}/").status_code == 200
    assert ask(pub, probe, "identity")["uid"] >= 0  # the probe itself survived its failed allocation


# A build backend that attacks while uv builds it: it reports what it could do in its error, since uv shows a
# failed build's output, then fails.
HOSTILE_BACKEND = """\
import json, os, sys

def _try(action):
    try:
        action()
        return "done"
    except BaseException as exc:
        return type(exc).__name__

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    targets = json.loads(open("targets.json").read())
    report = {}
    for name, path in targets.items():
        report[name] = _try(lambda: open(path, "a").write("poisoned"))
    report["environ"] = sorted(os.environ)
    print("HOSTILE-REPORT " + json.dumps(report), file=sys.stderr)
    raise SystemExit(1)
"""


def hostile_sdist(out: Path, targets: dict[str, str]) -> Path:
    top = "hostile_backend-1.0"
    members = {
        f"{top}/PKG-INFO": b"Metadata-Version: 2.1\nName: hostile-backend\nVersion: 1.0\n",
        f"{top}/pyproject.toml": b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        f"{top}/backend.py": HOSTILE_BACKEND.encode(),
        f"{top}/targets.json": json.dumps(targets).encode(),
    }
    path = out / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_hostile_build_backend_cannot_poison_the_cache_or_other_environments(
    pub: Publishing, probe: str, tmp_path: Path
) -> None:
    data = pub.server.data_dir
    cache_file = next(p for p in (data / "cache" / "uv").rglob("*.py") if p.is_file())
    other_env = next(p for p in (data / "environments").rglob("site-packages/fastapi/__init__.py"))
    targets = {
        "cache": str(cache_file),
        "environment": str(other_env),
        "secret": str(data / "token-secret"),
        "config": str(data / "packyard.toml"),
    }
    before = {name: Path(path).read_bytes() for name, path in targets.items()}
    pub.server.twine(hostile_sdist(tmp_path, targets))
    app = copy_app("fastapi-app", tmp_path)
    (app / "requirements.txt").write_text("fastapi\nuvicorn\nhostile-backend==1.0\n")
    result = pub.deploy("fastapi", app, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    line = next(line for line in output.splitlines() if "HOSTILE-REPORT" in line)
    report = json.loads(line.split("HOSTILE-REPORT ", 1)[1].rpartition("}")[0] + "}")  # rsconnect adds colour codes
    assert report["cache"] != "done" and report["environment"] != "done", report
    assert report["secret"] != "done" and report["config"] != "done", report
    assert not any(name.startswith("PACKYARD_") or name == "HOSTILE_MARKER" for name in report["environ"])
    assert {name: Path(path).read_bytes() for name, path in targets.items()} == before


def admin_overview(server: Server) -> str:
    web_user(server, "ada", "admin", "correct horse battery")
    client = httpx.Client(base_url=server.url)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    login = {"username": "ada", "password": "correct horse battery", "csrf_token": token.group(1), "next": "/"}
    assert client.post("/login", data=login).status_code == 303
    return client.get("/admin/").text


def test_sandbox_off_is_said_at_every_start_and_on_the_admin_page(tmp_path: Path) -> None:
    with publishing_server("sqlite", tmp_path / "data", {"PACKYARD_APPLICATIONS_SANDBOX": "off"}) as server:
        warning = 'WARNING: Content is NOT sandboxed (`[applications] sandbox = "off"`)'
        assert warning in server.log_path.read_text()
        overview = html.unescape(admin_overview(server))
        assert "Content is NOT sandboxed" in overview
        assert "Content is served from this server's own origin" in overview  # issue 14's risk, said
        server.restart()
        assert server.log_path.read_text().count(warning) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="run_as applies when the server runs as root")
def test_no_content_runs_when_the_sandbox_cannot(tmp_path: Path) -> None:
    with publishing_server("sqlite", tmp_path / "data", {"PACKYARD_APPLICATIONS_RUN_AS": "root"}) as server:
        refusal = "Packyard cannot sandbox content on this host: `[applications] run_as` is `root`"
        assert refusal in server.log_path.read_text()
        assert refusal in html.unescape(admin_overview(server))
        pub = setup_publishing(server, tmp_path / "home")
        result = pub.deploy("fastapi", copy_app("fastapi-app", tmp_path), check=False)
        assert result.returncode != 0
        assert refusal in result.stdout + result.stderr
        assert 'set `[applications] sandbox = "off"`' in result.stdout + result.stderr
