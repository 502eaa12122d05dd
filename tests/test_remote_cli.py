"""`/__api__/download`: the remote CLI, fetched with curl exactly as Package Manager's docs print it, uploads a wheel
and an sdist from a clean virtual environment (no Packyard, Python 3.11 and 3.9); the 401s, the 400 and its errors."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from packyard import __version__
from tests.conftest import Server, free_port, run
from tests.dists import make_sdist, make_wheel

PYTHONS = {"3.11": "/root/.pyenv/versions/3.11.7/bin/python3", "3.9": "/root/.pyenv/versions/3.9.18/bin/python3"}
# The seed's download, character for character (the Linux one; `?os=darwin` differs only in the query).
SEED_CURL = 'curl -fLOJH "Authorization: Bearer ${PACKAGEMANAGER_TOKEN}" "${PACKAGEMANAGER_ADDRESS}/__api__/download"'
JSON_PAGE = "application/vnd.pypi.simple.v1+json"


def clean_venv(python: str, where: Path) -> Path:
    """A virtual environment with nothing installed, not even pip: its `python3` runs `#!/usr/bin/env python3`."""
    if not Path(python).exists():
        pytest.skip(f"{python} is not on this machine")
    subprocess.run([python, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin"


def shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def client(server: Server, bin_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    """The seed's two variables and a PATH whose `python3` is the clean venv's; nothing of this test's Python."""
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "PACKAGEMANAGER_ADDRESS": server.url,
        "PACKAGEMANAGER_TOKEN": server.upload_token,
        **extra,
    }


def served_files(server: Server, project: str) -> list[str]:
    response = httpx.get(f"{server.index}{project}/", headers={"Accept": JSON_PAGE})
    assert response.status_code == 200, response.text
    return sorted(f["filename"] for f in response.json()["files"])


@pytest.fixture(scope="module")
def rspm(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The remote CLI, downloaded once for the error tests."""
    where = tmp_path_factory.mktemp("rspm")
    env = {"PATH": "/usr/bin:/bin", "PACKAGEMANAGER_ADDRESS": server.url, "PACKAGEMANAGER_TOKEN": server.upload_token}
    result = shell(SEED_CURL + " && chmod +x rspm", env, where)
    assert result.returncode == 0, result.stderr
    return where / "rspm"


@pytest.mark.parametrize("version", PYTHONS)
def test_downloaded_cli_uploads_from_a_clean_venv(server: Server, tmp_path: Path, version: str) -> None:
    bin_dir = clean_venv(PYTHONS[version], tmp_path / "venv")
    env = client(server, bin_dir, tmp_path)
    assert shell("python3 -c 'import packyard'", env, tmp_path).returncode == 1  # nothing of Packyard's
    assert shell("python3 -c 'import httpx'", env, tmp_path).returncode == 1  # nor its dependencies
    packages = tmp_path / "packages"
    project = f"remote-cli-{version.replace('.', '')}"
    wheel = make_wheel(packages, project, "1.0")
    sdist = make_sdist(packages, project, "1.0")

    download = shell(SEED_CURL + "\nchmod +x rspm", env, tmp_path)
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "rspm").read_text().startswith("#!/usr/bin/env python3\n")
    add = f"./rspm add --source=local-python-src --path={packages}"  # as the seed prints it
    first = shell(add, env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "2 uploaded, 0 skipped, 0 failed\n"
    assert f"Uploaded {wheel.name} (" in first.stderr and f"Uploaded {sdist.name} (" in first.stderr
    assert "\r" not in first.stderr  # no terminal, no progress bar: quiet lines
    assert served_files(server, project) == sorted([wheel.name, sdist.name])

    # As `packyard add` does: identical files are skipped, other bytes under a stored name fail.
    again = shell(add, env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "0 uploaded, 2 skipped, 0 failed\n"
    assert f"Skipped {wheel.name} (already in `local-python-src`)" in again.stderr
    other = make_wheel(tmp_path / "other", project, "1.0", payload=b"# other bytes\n")
    conflict = shell(f"./rspm add --source=local-python-src --path={other}", env, tmp_path)
    assert conflict.returncode == 1
    assert conflict.stdout == "0 uploaded, 0 skipped, 1 failed\n"
    assert f"Failed {other.name}: File already exists" in conflict.stderr
    assert "error: 1 of 1 files were not uploaded to `local-python-src`." in conflict.stderr

    # Packyard's own variable names work as well, and `--address`/`--token` win over both.
    ours = {k: v for k, v in env.items() if not k.startswith("PACKAGEMANAGER_")}
    ours.update(PACKYARD_ADDRESS=server.url, PACKYARD_TOKEN=server.upload_token)
    assert shell(add, ours, tmp_path).stdout == "0 uploaded, 2 skipped, 0 failed\n"
    flags = f"{add} --address={server.url} --token={server.upload_token}"
    assert shell(flags, {**env, "PACKAGEMANAGER_TOKEN": "nonsense"}, tmp_path).returncode == 0


def test_progress_bar_on_a_terminal(server: Server, rspm: Path, tmp_path: Path) -> None:
    """On a terminal each file's bar is redrawn with `\\r` and cleared before its `Uploaded` line."""
    wheel = make_wheel(tmp_path, "remote-cli-tty", "1.0", payload=os.urandom(300_000).hex().encode())
    env = {**client(server, Path("/usr/bin"), tmp_path), "COLUMNS": "100"}
    command = f"{rspm} add --source=local-python-src --path={wheel}"
    # `script` gives the command a pseudo-terminal, so stderr is a TTY as in an interactive shell.
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, env=env, timeout=120)
    shown = result.stdout.decode()  # bytes, so the `\r`s stay as they are
    assert result.returncode == 0, shown
    size = f"{wheel.stat().st_size / 1000:.1f} kB"
    assert f"\r{wheel.name} [" in shown and f"#] {size}/{size}" in shown  # the bar, drawn up to full
    cleared_then_done = rf"\r {{20,}}\rUploaded {re.escape(wheel.name)} \({re.escape(size)}\)\r\n"
    assert re.search(cleared_then_done, shown), shown


def test_help_and_version(rspm: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    version = run([str(rspm), "--version"], env)
    assert version.stdout == f"rspm {__version__} (Packyard)\n"
    assert "add" in run([str(rspm), "--help"], env).stdout
    usage = run([str(rspm), "add", "--help"], env).stdout
    for text in ("--source", "--path", "--address", "--token", "PACKAGEMANAGER_TOKEN", "PACKYARD_ADDRESS"):
        assert text in usage


def test_download_per_os(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.upload_token}"}
    linux = httpx.get(f"{server.url}/__api__/download", headers=headers)
    assert linux.status_code == 200
    assert linux.headers["content-disposition"] == 'attachment; filename="rspm"'
    assert f'\nVERSION = "{__version__}"' in linux.text
    assert 'VERSION = "unstamped"' not in linux.text
    darwin = httpx.get(f"{server.url}/__api__/download", params={"os": "darwin"}, headers=headers)
    assert darwin.headers["content-disposition"] == 'attachment; filename="rspm"'
    windows = httpx.get(f"{server.url}/__api__/download", params={"os": "windows"}, headers=headers)
    assert windows.headers["content-disposition"] == 'attachment; filename="rspm.py"'
    head = httpx.head(f"{server.url}/__api__/download", params={"os": "windows"}, headers=headers)
    assert head.status_code == 200 and head.headers["content-disposition"] == 'attachment; filename="rspm.py"'
    assert linux.content == darwin.content == windows.content

    unknown = httpx.get(f"{server.url}/__api__/download", params={"os": "solaris"}, headers=headers)
    assert unknown.status_code == 400
    assert unknown.text == (
        "Unknown `os` 'solaris' in `/__api__/download?os=`; use one of `linux`, `darwin`, `windows` "
        "(every one gets the same Python 3.9+ script).\n"
    )


def test_download_needs_a_valid_token(server: Server, tmp_path: Path) -> None:
    url = f"{server.url}/__api__/download"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.text.startswith("Authentication required: send an API token")
    assert missing.headers["www-authenticate"] == 'Basic realm="packyard"'
    bad = httpx.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.text == (
        "The token is not valid for this server (bad signature or format); check that you copied the whole token.\n"
    )

    expired = server.cli("token", "create", "-q", "--description", "rspm-expired", "--scope", "sources:write",
                         "--sources", "local-python-src", "--expires", "1s").stdout.strip()  # fmt: skip
    revoked = server.token("--scope", "repos:read", "--repos", "pypi")  # any valid scope downloads
    assert httpx.get(url, headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    [token_id] = [line.split()[0] for line in server.cli("token", "list").stdout.splitlines() if "repos:read" in line]
    server.cli("token", "revoke", token_id)
    server.wait_synced()
    time.sleep(1.5)  # the 1 s token has expired
    for token, says in ((expired, "The token `rspm-expired` has expired"), (revoked, "was revoked")):
        refused = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401, refused.text
        assert says in refused.text

    # curl, as the seed runs it, fails and writes no file.
    env = {"PATH": "/usr/bin:/bin", "PACKAGEMANAGER_ADDRESS": server.url, "PACKAGEMANAGER_TOKEN": "not-a-token"}
    result = shell(SEED_CURL, env, tmp_path)
    assert result.returncode == 22
    assert "401" in result.stderr
    assert not (tmp_path / "rspm").exists()


def rspm_error(rspm: Path, env: dict[str, str], *args: str) -> str:
    """What the CLI printed on stderr, having exited 1 and printed an `error:` line."""
    result = run([str(rspm), "add", *args], {"PATH": "/usr/bin:/bin", **env}, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    return result.stderr


def test_cli_errors(server: Server, rspm: Path, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "remote-cli-errors", "1.0")
    seed = {"PACKAGEMANAGER_ADDRESS": server.url, "PACKAGEMANAGER_TOKEN": server.upload_token}
    source = "--source=local-python-src"

    missing = tmp_path / "nowhere"
    assert rspm_error(rspm, seed, source, f"--path={missing}") == (
        f"error: `{missing}` does not exist.\n\nhint: Pass `--path` a wheel, an sdist or a folder of them.\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"error: No wheels or sdists in `{empty}`." in rspm_error(rspm, seed, source, f"--path={empty}")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    assert f"error: `{text}` is not a wheel or sdist." in rspm_error(rspm, seed, source, f"--path={text}")

    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    assert rspm_error(rspm, seed, source, f"--path={broken}") == (
        f"error: Cannot read `{broken}`.\n  Caused by: File is not a zip file\n\nhint: Rebuild it with `uv build`.\n"
    )

    unknown = {**seed, "PACKAGEMANAGER_TOKEN": server.token("--scope", "sources:write", "--sources", "*")}
    said = rspm_error(rspm, unknown, "--source=nosuch", f"--path={wheel}")
    assert said.startswith(f"error: Cannot upload to source `nosuch` at {server.url} (404).\n")
    assert "  Caused by: Source `nosuch` does not exist. Known sources: `local-python-src`." in said

    bad = rspm_error(rspm, {**seed, "PACKAGEMANAGER_TOKEN": "not-a-token"}, source, f"--path={wheel}")
    assert bad.startswith(f"error: Cannot upload to source `local-python-src` at {server.url} (401).\n")
    assert "Caused by: The token is not valid for this server" in bad
    assert "hint: Set `PACKYARD_TOKEN` (or `PACKAGEMANAGER_TOKEN`, or pass `--token`) to a valid token" in bad
    other = {**seed, "PACKAGEMANAGER_TOKEN": server.token("--scope", "repos:read", "--repos", "*")}
    scoped = rspm_error(rspm, other, source, f"--path={wheel}")
    assert "(403)" in scoped and "does not grant `sources:write` on source `local-python-src`" in scoped

    assert rspm_error(rspm, {}, source, f"--path={wheel}") == (
        "error: No server address.\n\nhint: Set `PACKYARD_ADDRESS=https://packyard.example.com` "
        "(or `PACKAGEMANAGER_ADDRESS`) or pass `--address`.\n"
    )
    no_token = rspm_error(rspm, {"PACKYARD_ADDRESS": server.url}, source, f"--path={wheel}")
    assert no_token.startswith("error: No API token.\n\nhint: Set `PACKYARD_TOKEN`")
    schemeless = rspm_error(rspm, {**seed, "PACKAGEMANAGER_ADDRESS": "pkgs.example.com"}, source, f"--path={wheel}")
    assert schemeless.startswith("error: The server address `pkgs.example.com` is not an http:// or https:// URL.")
    down = f"http://127.0.0.1:{free_port()}"
    unreachable = rspm_error(rspm, {**seed, "PACKAGEMANAGER_ADDRESS": down}, source, f"--path={wheel}")
    assert unreachable.startswith(f"error: Cannot reach the server at {down}.\n  Caused by: ")
    assert "Connection refused" in unreachable

    # A wrong subcommand or a missing flag is argparse's usage error (exit 2).
    usage = subprocess.run([str(rspm), "add", f"--path={wheel}"], capture_output=True, text=True, env=os.environ)
    assert usage.returncode == 2
    assert "the following arguments are required: --source" in usage.stderr
