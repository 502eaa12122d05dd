"""twine (with a real gpg `.asc`), `uv publish`, pdm and `packyard add` upload; re-runs succeed; conflicts fail."""

from __future__ import annotations

import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, Server, run, uv_bin
from tests.dists import make_sdist, make_wheel


def json_page(server: Server, project: str) -> dict:
    response = httpx.get(f"{server.index}{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert response.status_code == 200, response.text
    return response.json()


def file_url(server: Server, project: str, filename: str) -> str:
    entry = next(f for f in json_page(server, project)["files"] if f["filename"] == filename)
    return str(httpx.URL(f"{server.index}{project}/").join(entry["url"]))


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Packyard Test <test@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return env


def test_twine_uploads_signed_files(
    server: Server, tmp_path: Path, client_env: dict[str, str], gnupg: dict[str, str]
) -> None:
    wheel = make_wheel(tmp_path, "signed-pkg", "1.0")
    subprocess.run(["gpg", "--batch", "--detach-sign", "--armor", str(wheel)], check=True, env=gnupg)
    signature = wheel.with_name(wheel.name + ".asc")
    server.twine(wheel, signature)

    html = httpx.get(f"{server.index}signed-pkg/").text
    assert 'data-gpg-sig="true"' in html
    assert json_page(server, "signed-pkg")["files"][0]["gpg-sig"] is True
    served = httpx.get(file_url(server, "signed-pkg", wheel.name) + ".asc")
    assert served.status_code == 200 and served.content == signature.read_bytes()
    downloaded = tmp_path / "downloaded.asc"
    downloaded.write_bytes(served.content)
    subprocess.run(
        ["gpg", "--batch", "--verify", str(downloaded), str(wheel)], check=True, env=gnupg, capture_output=True
    )


def test_twine_rerun_succeeds_and_conflict_fails(server: Server, tmp_path: Path, client_env: dict[str, str]) -> None:
    first = make_wheel(tmp_path / "a", "rerun-pkg", "1.0")
    sdist = make_sdist(tmp_path / "a", "rerun-pkg", "1.0")
    server.twine(first, sdist)
    server.twine(first, sdist)  # CI re-runs must pass: identical files answer 200

    changed = make_wheel(tmp_path / "b", "rerun-pkg", "1.0", payload=b"# different bytes\n")
    result = server.twine(changed, check=False)
    assert result.returncode != 0
    # twine shows the reason phrase without --verbose.
    assert "File already exists" in result.stdout + result.stderr
    files = json_page(server, "rerun-pkg")["files"]
    assert {f["hashes"]["sha256"] for f in files if f["filename"] == first.name} == {
        hashlib.sha256(first.read_bytes()).hexdigest()
    }


def test_uv_publish_with_check_url(server: Server, tmp_path: Path, client_env: dict[str, str]) -> None:
    wheel = make_wheel(tmp_path / "a", "uv-published", "1.0", requires_python=">=3.9")
    command = [
        str(uv_bin()),
        "publish",
        "--publish-url",
        server.upload_url,
        "--token",
        server.upload_token,
        "--check-url",
        server.index,
    ]
    run([*command, str(wheel)], client_env)
    again = run([*command, str(wheel)], client_env)
    assert "already exists" in again.stderr.lower() or "skipping" in again.stderr.lower()
    assert json_page(server, "uv-published")["files"][0]["requires-python"] == ">=3.9"

    changed = make_wheel(tmp_path / "b", "uv-published", "1.0", payload=b"# other\n")
    result = run([*command[:-2], str(changed)], client_env, check=False)
    assert result.returncode != 0
    assert "File already exists" in result.stderr


def test_pdm_publish(server: Server, tmp_path: Path, client_env: dict[str, str]) -> None:
    project = tmp_path / "proj"
    make_wheel(project / "dist", "pdm-published", "0.3")
    (project / "pyproject.toml").write_text('[project]\nname = "pdm-published"\nversion = "0.3"\n')
    env = {**client_env, "PDM_CHECK_UPDATE": "false", "PDM_USE_VENV": "false"}
    run(
        [
            str(BIN / "pdm"),
            "publish",
            "--no-build",
            "-r",
            server.upload_url,
            "-u",
            "__token__",
            "-P",
            server.upload_token,
        ],
        env,
        cwd=project,
    )
    assert json_page(server, "pdm-published")["versions"] == ["0.3"]


def test_packyard_add_uploads_and_skips(
    server: Server, tmp_path: Path, client_env: dict[str, str], gnupg: dict[str, str]
) -> None:
    dist = tmp_path / "dist"
    wheel = make_wheel(dist, "added-pkg", "2.0")
    make_sdist(dist, "added-pkg", "2.0")
    subprocess.run(["gpg", "--batch", "--detach-sign", "--armor", str(wheel)], check=True, env=gnupg)
    env = {**client_env, "PACKYARD_ADDRESS": server.url, "PACKYARD_TOKEN": server.upload_token}
    command = [str(BIN / "packyard"), "add", "--source", "local-python-src", "--path", str(dist)]
    first = run(command, env)
    assert "2 uploaded, 0 skipped, 0 failed" in first.stdout
    assert 'data-gpg-sig="true"' in httpx.get(f"{server.index}added-pkg/").text
    second = run(command, env)
    assert "0 uploaded, 2 skipped, 0 failed" in second.stdout

    # The seed's variable names work too.
    seed_env = {**client_env, "PACKAGEMANAGER_ADDRESS": server.url, "PACKAGEMANAGER_TOKEN": server.upload_token}
    assert "0 uploaded, 2 skipped" in run(command, seed_env).stdout

    make_wheel(tmp_path / "other", "added-pkg", "2.0", payload=b"# other\n")
    conflict = run([*command[:-1], str(tmp_path / "other")], env, check=False)
    assert conflict.returncode == 1
    assert "File already exists" in conflict.stderr


def test_packyard_add_explains_missing_settings(tmp_path: Path, client_env: dict[str, str]) -> None:
    wheel = make_wheel(tmp_path, "nowhere", "1.0")
    result = run([str(BIN / "packyard"), "add", "--source", "s", "--path", str(wheel)], client_env, check=False)
    assert result.returncode == 1
    assert "error: No server address." in result.stderr
    assert "hint: Set `PACKYARD_ADDRESS" in result.stderr


def test_chunked_upload_without_content_length(server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "chunked-pkg", "1.0")
    boundary = "packyard-test-boundary"
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "chunked-pkg",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(wheel.read_bytes()).hexdigest(),
    }

    def body():  # type: ignore[no-untyped-def]
        for name, value in fields.items():
            yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{wheel.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        data = wheel.read_bytes()
        for i in range(0, len(data), 100):  # many small chunks, as a streaming client sends them
            yield data[i : i + 100]
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        server.upload_url,
        content=body(),
        auth=("__token__", server.upload_token),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200, response.text
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert json_page(server, "chunked-pkg")["files"][0]["size"] == wheel.stat().st_size


def test_parallel_first_uploads_of_a_new_project(server: Server, tmp_path: Path) -> None:
    """CI jobs upload a new release's wheels in parallel; the one that creates the project must not fail the rest."""
    files = [make_wheel(tmp_path, "parallel-pkg", f"1.{i}") for i in range(4)] + [
        make_sdist(tmp_path, "parallel-pkg", "1.0")
    ]
    with ThreadPoolExecutor(len(files)) as pool:
        results = list(pool.map(lambda f: server.twine(f, check=False), files))
    assert [r.returncode for r in results] == [0] * len(files), [r.stdout + r.stderr for r in results if r.returncode]
    assert {f["filename"] for f in json_page(server, "parallel-pkg")["files"]} == {f.name for f in files}
