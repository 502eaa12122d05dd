"""The real rsconnect CLI deploys FastAPI and Flask APIs to a real server, on environments built from its repo."""

from __future__ import annotations

import json
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.conftest import Server
from tests.publishing import (
    APPS,
    Publishing,
    copy_app,
    manifest,
    pinned,
    publishing_server,
    setup_publishing,
    tarball,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    with publishing_server(request.param, tmp_path_factory.mktemp(f"packyard-{request.param}")) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"))


@pytest.fixture(scope="module")
def fastapi_app(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FastAPI test app, deployed once with a variable; later tests redeploy it."""
    app = copy_app("fastapi-app", tmp_path_factory.mktemp("apps"))
    result = pub.deploy("fastapi", app, "-E", "GREETING=hello from -E")
    assert "Deployment completed successfully." in result.stdout + result.stderr
    return app


def test_add_checks_the_key(pub: Publishing) -> None:
    bad = pub.rsconnect("add", "--server", pub.server.url, "--name", "bad", "--api-key", "nope", check=False)
    assert bad.returncode == 1
    assert "The specified API key is not valid." in bad.stdout + bad.stderr
    settings = httpx.get(f"{pub.server.url}/__api__/server_settings").json()
    assert settings["version"].count(".") == 2


def test_deploy_fastapi_serves_through_the_proxy(pub: Publishing, fastapi_app: Path) -> None:
    record = pub.record(fastapi_app)
    guid = record["app_guid"]
    assert "-" in guid and record["app_mode"] == "python-fastapi"
    assert pub.get(f"/content/{guid}/").json() == {"app": "fastapi", "version": 1}
    assert pub.get(f"/content/{guid}/greeting").json()["greeting"] == "hello from -E"
    links = pub.get(f"/content/{guid}/links").json()
    assert links["self"].endswith(f"/content/{guid}/links") and links["root_path"] == f"/content/{guid}"
    docs = pub.get(f"/content/{guid}/docs").text
    assert f"/content/{guid}/openapi.json" in docs
    big = b"x" * 3_000_000
    assert pub.get(f"/content/{guid}").status_code in (200, 301, 307, 308)
    assert httpx.post(f"{pub.server.url}/content/{guid}/echo", content=big, headers=pub.headers).json() == {
        "size": len(big)
    }


def test_content_is_private_to_its_owner_by_default(pub: Publishing, fastapi_app: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    anonymous = httpx.get(f"{pub.server.url}/content/{guid}/")
    assert anonymous.status_code == 401
    pub.server.cli("user", "create", "victor", "--role", "viewer")
    viewer = pub.server.cli("key", "create", "--user", "victor", "-q").stdout.strip()
    other = httpx.get(f"{pub.server.url}/content/{guid}/", headers={"Authorization": f"Key {viewer}"})
    assert other.status_code == 403
    # A viewer cannot publish.
    created = httpx.post(
        f"{pub.server.url}/__api__/v1/content", json={"name": "nope"}, headers={"Authorization": f"Key {viewer}"}
    )
    assert created.status_code == 403 and "cannot publish" in created.json()["error"]


def test_variables_are_write_only_and_encrypted(pub: Publishing, fastapi_app: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    assert pub.api("GET", f"/v1/content/{guid}/environment").json() == ["GREETING"]
    engine = sqlalchemy.create_engine(pub.server.sql_url)
    with engine.connect() as connection:
        stored = connection.execute(sqlalchemy.text("SELECT value FROM content_variables")).scalars().all()
    engine.dispose()
    assert stored and all(b"hello from -E" not in bytes(value) for value in stored)


def test_redeploy_reuses_the_environment_and_serves_new_code(pub: Publishing, fastapi_app: Path) -> None:
    (fastapi_app / "app.py").write_text((fastapi_app / "app.py").read_text().replace("VERSION = 1", "VERSION = 2"))
    # --metadata makes rsconnect send the multipart form (`archive` + `metadata`) instead of the raw tar.gz.
    result = pub.deploy("fastapi", fastapi_app, "--metadata", "team=data")
    output = result.stdout + result.stderr
    assert "Reusing environment" in output, output
    assert "Installed" not in output  # uv did not run
    guid = pub.record(fastapi_app)["app_guid"]
    assert pub.get(f"/content/{guid}/").json()["version"] == 2
    # The variable set on the first deploy is still there: a redeploy without -E keeps variables.
    assert pub.get(f"/content/{guid}/greeting").json()["greeting"] == "hello from -E"
    newest = pub.api("GET", f"/v1/content/{guid}/bundles").json()[0]
    assert newest["active"] and newest["metadata"].get("team") == "data"


def test_rollback_to_an_earlier_bundle(pub: Publishing, fastapi_app: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    bundles = pub.api("GET", f"/v1/content/{guid}/bundles").json()
    assert [b["active"] for b in bundles][:1] == [True] and len(bundles) >= 2
    oldest = bundles[-1]["id"]
    task = pub.api("POST", f"/v1/content/{guid}/deploy", json={"bundle_id": oldest})
    assert task.status_code == 202
    outcome = pub.wait_task(task.json()["task_id"])
    assert outcome["code"] == 0, outcome
    assert pub.get(f"/content/{guid}/").json()["version"] == 1
    assert pub.api("GET", f"/v1/content/{guid}").json()["bundle_id"] == oldest


def test_deploy_flask_with_its_own_variables(pub: Publishing, fastapi_app: Path, tmp_path: Path) -> None:
    app = copy_app("flask-app", tmp_path)
    pub.deploy("flask", app, "-E", "FLASK_ONLY=for flask")
    guid = pub.record(app)["app_guid"]
    assert pub.get(f"/content/{guid}/").json() == {"app": "flask", "greeting": "for flask", "other": None}
    assert pub.get(f"/content/{guid}/links").json() == {"self": f"/content/{guid}/links"}
    # And the FastAPI app does not see the Flask app's variable.
    other = pub.record(fastapi_app)["app_guid"]
    assert pub.get(f"/content/{other}/greeting").json()["secret_seen"] is None


def test_new_and_app_id(pub: Publishing, fastapi_app: Path) -> None:
    first = pub.record(fastapi_app)
    pub.deploy("fastapi", fastapi_app, "--new")
    second = pub.record(fastapi_app)
    assert second["app_guid"] != first["app_guid"]
    assert pub.api("GET", f"/v1/content/{second['app_guid']}").json()["name"] == fastapi_app.name + "1"
    # --app-id with the GUID, then with the numeric id, updates the first content again.
    pub.deploy("fastapi", fastapi_app, "--app-id", first["app_guid"])
    assert pub.record(fastapi_app)["app_guid"] == first["app_guid"]
    pub.deploy("fastapi", fastapi_app, "--app-id", first["app_id"], "--title", "Renamed API")
    described = json.loads(pub.rsconnect("content", "describe", "-n", "packyard", "-g", first["app_guid"]).stdout)
    assert described[0]["title"] == "Renamed API"


def test_content_search_describe_and_download(pub: Publishing, fastapi_app: Path, tmp_path: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    found = json.loads(pub.rsconnect("content", "search", "-n", "packyard", "--content-type", "python-fastapi").stdout)
    assert guid in {item["guid"] for item in found}
    out = tmp_path / "bundle.tar.gz"
    pub.rsconnect("content", "download-bundle", "-n", "packyard", "-g", guid, "-o", str(out))
    with tarfile.open(out) as tar:
        names = tar.getnames()
        data = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"manifest.json", "app.py", "requirements.txt"} <= set(names)
    assert data["metadata"]["appmode"] == "python-fastapi"
    lock = tmp_path / "requirements.txt.lock"
    pub.rsconnect("content", "get-lockfile", "-n", "packyard", "-g", guid, "-o", str(lock))
    pins = pinned("api")
    expected = {f"{name}=={pins[name]}" for name in ("fastapi", "uvicorn", "pydantic-core")}
    assert expected <= set(lock.read_text().split())


def _upload_and_deploy(pub: Publishing, guid: str, archive: bytes) -> dict:
    uploaded = pub.api("POST", f"/v1/content/{guid}/bundles", content=archive)
    assert uploaded.status_code == 200, uploaded.text
    task = pub.api("POST", f"/v1/content/{guid}/deploy", json={"bundle_id": uploaded.json()["id"]})
    return pub.wait_task(task.json()["task_id"])


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


BAD_BUNDLES = {
    "traversal": ({"manifest.json": manifest(), "../evil.py": b"x", "requirements.txt": b""}, "outside"),
    "link-out": ({"manifest.json": manifest(), "requirements.txt": b"", "l": _symlink("l", "/etc/passwd")}, "l"),
    "no-manifest": ({"app.py": b"app = None"}, "no manifest.json"),
    "unknown-mode": ({"manifest.json": manifest("python-flsk"), "requirements.txt": b""}, "python-flsk"),
    "no-requirements": ({"manifest.json": manifest(), "app.py": b""}, "requirements.txt"),
    "import-error": (
        {
            "manifest.json": manifest(),
            "requirements.txt": (APPS / "fastapi-app" / "requirements.txt").read_bytes(),
            "app.py": b"import this_module_does_not_exist\n",
        },
        "this_module_does_not_exist",
    ),
    "no-environment-management": (
        {
            "manifest.json": manifest(environment={"environment_management": {"python": False}}),
            "requirements.txt": b"fastapi\n",
            "app.py": b"app = None\n",
        },
        "uvicorn",  # the host's own Python has no uvicorn: the bundle asked to run there, without an environment
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundles_fail_the_deploy_and_keep_the_old_version(pub: Publishing, fastapi_app: Path, case: str) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    before = pub.get(f"/content/{guid}/").json()
    members, words = BAD_BUNDLES[case]
    outcome = _upload_and_deploy(pub, guid, tarball(members))
    assert outcome["code"] != 0 and outcome["finished"]
    assert words in outcome["error"], outcome
    assert pub.get(f"/content/{guid}/").json() == before


def test_a_bundle_that_is_not_a_tarball_is_refused_at_upload(pub: Publishing, fastapi_app: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    count = len(pub.api("GET", f"/v1/content/{guid}/bundles").json())
    refused = pub.api("POST", f"/v1/content/{guid}/bundles", content=b"PK\x03\x04 a zip, not a tar.gz")
    assert refused.status_code == 400 and "not a gzip-compressed tar" in refused.json()["error"]
    assert len(pub.api("GET", f"/v1/content/{guid}/bundles").json()) == count


def test_an_import_error_fails_the_deploy_with_the_traceback(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("broken-import", tmp_path)
    result = pub.deploy("fastapi", app, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "this_module_does_not_exist" in output and "Task exited with status 1" in output


def test_redeploy_under_load_drops_no_request(pub: Publishing, fastapi_app: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    failures: list[str] = []
    versions: set[int] = set()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(headers=pub.headers, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.get(f"{pub.server.url}/content/{guid}/")
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                    else:
                        versions.add(response.json()["version"])
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        source = (fastapi_app / "app.py").read_text()
        (fastapi_app / "app.py").write_text(
            source.replace("VERSION = 2", "VERSION = 3").replace("VERSION = 1", "VERSION = 3")
        )
        pub.deploy("fastapi", fastapi_app, "--app-id", pub.record(fastapi_app)["app_guid"])
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert 3 in versions


def test_logs_through_the_api_and_the_cli(pub: Publishing, fastapi_app: Path) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    logs = pub.api("GET", f"/v1/content/{guid}/log").json()
    assert any("Uvicorn running" in line or "Application startup complete" in line for line in logs["app"]), logs
    assert any("Reusing environment" in line for line in logs["deploy"])
    printed = pub.server.cli("content", "logs", guid, "--deploy", "-n", "500").stdout
    assert "Deployed in" in printed


@pytest.fixture
def restarted(pub: Publishing) -> Iterator[Server]:
    pub.server.restart()
    yield pub.server


def test_content_starts_again_after_a_server_restart(pub: Publishing, fastapi_app: Path, restarted: Server) -> None:
    guid = pub.record(fastapi_app)["app_guid"]
    response = pub.get(f"/content/{guid}/")
    assert response.status_code == 200 and response.json()["app"] == "fastapi"


def test_runtime_caches_through_rsconnect(pub: Publishing, fastapi_app: Path) -> None:
    pub.server.cli("user", "create", "ada", "--role", "admin")
    admin = pub.server.cli("key", "create", "--user", "ada", "-q").stdout.strip()
    pub.rsconnect("add", "--server", pub.server.url, "--name", "admin", "--api-key", admin)
    caches = json.loads(pub.rsconnect("system", "caches", "list", "-n", "admin").stdout)
    version = caches[0]["version"] if isinstance(caches, list) else caches["caches"][0]["version"]
    dry = pub.rsconnect("system", "caches", "delete", "-n", "admin", "-l", "Python", "-V", version, "-I", "Local",
                        "--dry-run")  # fmt: skip
    assert "Dry run finished" in dry.stdout + dry.stderr
    before = pub.server.cli("env", "list").stdout
    assert before.count("\n") >= 2  # a header and the environments
    pub.rsconnect("system", "caches", "delete", "-n", "admin", "-l", "Python", "-V", version, "-I", "Local")
    assert pub.server.cli("env", "list").stdout.count("\n") <= 1
    # The content's next deploy builds its environment again.
    result = pub.deploy("fastapi", fastapi_app)
    output = result.stdout + result.stderr
    assert "building it again" in output, output
    assert pub.get(f"/content/{pub.record(fastapi_app)['app_guid']}/").status_code == 200
    # A publisher may not clear caches.
    refused = pub.rsconnect("system", "caches", "list", "-n", "packyard", check=False)
    assert refused.returncode != 0 and "administrator" in refused.stdout + refused.stderr


def test_environments_install_from_an_authenticated_repository_with_netrc(pub: Publishing, tmp_path: Path) -> None:
    """The seed's setup: a repository that needs a token, and a netrc file named by NETRC for the server."""
    server = pub.server
    server.cli("repo", "create", "--name", "private", "--authenticated")
    server.cli("repo", "subscribe", "--repo", "private", "--source", "local-python-src")
    token = server.token("--scope", "repos:read", "--repos", "private")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin __token__\npassword {token}\n")
    saved = dict(server.env)
    try:
        server.env = {**saved, "PACKYARD_PYTHON_INDEX_URL": f"{server.url}/private/latest/simple/"}
        server.restart()
        app = copy_app("flask-app", tmp_path)
        refused = pub.deploy("flask", app, "--new", check=False)
        assert refused.returncode == 1
        assert "401" in refused.stdout + refused.stderr  # uv says the index wants credentials
        server.env = {**server.env, "NETRC": str(netrc)}
        server.restart()
        pub.deploy("flask", app, "--new")
        assert pub.get(f"/content/{pub.record(app)['app_guid']}/").json()["app"] == "flask"
    finally:
        server.env = saved
        server.restart()
