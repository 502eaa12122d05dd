"""Every `packyard ...` command a message or a page suggests runs as printed: each case triggers a real error (CLI,
HTTP API or web page), takes the command out of its text and runs it against the same server."""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, Server
from tests.dists import make_wheel

# One database is enough: the commands are the subject here, not the storage.
pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery"
_COMMAND = re.compile(r"`(packyard [^`]+)`|<code>(packyard [^<]+)</code>")


def suggested(text: str) -> list[str]:
    """The `packyard` commands in a message or page (in backticks, or in <code> on a page)."""
    return [html.unescape(a or b) for a, b in _COMMAND.findall(text)]


def run_suggested(
    server: Server, command: str, stdin: str = "", on_server: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a suggested command as printed (`packyard` being the installed one), on the server's data directory
    unless `on_server` is false; it must not be a usage error."""
    args = shlex.split(command)
    assert args[0] == "packyard", command
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    environ.update(server.env, NO_COLOR="1")
    if on_server:
        environ["PACKYARD_DATA_DIR"] = str(server.data_dir)
    result = subprocess.run(
        [str(BIN / "packyard"), *args[1:]], input=stdin, capture_output=True, text=True, env=environ
    )
    assert result.returncode != 2 and "Usage:" not in result.stderr, f"`{command}` is not runnable:\n{result.stderr}"
    return result


def basic(token: str) -> httpx.BasicAuth:
    return httpx.BasicAuth("__token__", token)


def test_hints_in_cli_errors_run(server: Server, tmp_path: Path) -> None:
    # A source that does not exist: the hint creates it.
    missing = server.cli("repo", "subscribe", "--repo", "pypi", "--source", "hint-src", check=False)
    [create] = suggested(missing.stderr)
    assert create == "packyard source create --name hint-src"
    assert run_suggested(server, create).returncode == 0

    # No data directory where the command looked: the hint creates one there.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    lost = subprocess.run(
        [str(BIN / "packyard"), "token", "list"], capture_output=True, text=True, env=environ, cwd=tmp_path
    )
    [init] = [c for c in suggested(lost.stderr) if c.startswith("packyard init")]
    assert run_suggested(server, init, on_server=False).returncode == 0
    assert (tmp_path / "packyard-data" / "packyard.toml").is_file()

    # `packyard add` without a token: the hint makes one for the source it uploads to.
    wheel = make_wheel(tmp_path / "dist", "hint-pkg", "1.0")
    add = subprocess.run(
        [str(BIN / "packyard"), "add", "--source", "local-python-src", "--path", str(wheel)],
        capture_output=True,
        text=True,
        env={**environ, "PACKYARD_ADDRESS": server.url, "NO_COLOR": "1"},
    )
    [make_token] = suggested(add.stderr)
    token = run_suggested(server, make_token).stdout.strip()
    again = f"{BIN / 'packyard'} add --source local-python-src --path {wheel}"
    uploaded = subprocess.run(
        shlex.split(again),
        capture_output=True,
        text=True,
        env={**environ, "PACKYARD_ADDRESS": server.url, "PACKYARD_TOKEN": token},
    )
    assert uploaded.returncode == 0, uploaded.stderr

    # A password expected on stdin and not there: the hint pipes it in.
    nothing = subprocess.run(
        [str(BIN / "packyard"), "user", "create", "hint-ann", "--password-stdin"],
        input="",
        capture_output=True,
        text=True,
        env={**os.environ, "PACKYARD_DATA_DIR": str(server.data_dir), "NO_COLOR": "1"},
    )
    [piped] = re.findall(r"\| (packyard [^`]+)`", nothing.stderr)
    assert run_suggested(server, piped, stdin=PASSWORD + "\n").returncode == 0


def test_hints_in_api_errors_run(server: Server, tmp_path: Path) -> None:
    server.cli("repo", "create", "--name", "hint-private", "--authenticated")
    server.cli("repo", "subscribe", "--repo", "hint-private", "--source", "local-python-src")
    index = f"{server.url}/hint-private/latest/simple/"
    server.wait_synced()

    # A token for another repository: the 403 names the command that makes the right one.
    refused = httpx.get(index, auth=basic(server.token("--scope", "repos:read", "--repos", "pypi")))
    assert refused.status_code == 403
    [make_token] = suggested(refused.text)
    granted = run_suggested(server, make_token).stdout.strip()
    server.wait_synced()
    assert httpx.get(index, auth=basic(granted)).status_code == 200

    # An expired token: the 401 names the command that makes its successor.
    short = server.token("--scope", "repos:read", "--repos", "hint-private", "--expires", "1s")
    time.sleep(2)
    expired = httpx.get(index, auth=basic(short))
    assert expired.status_code == 401
    [renew] = suggested(expired.text)
    assert "--expires 30d" in renew
    renewed = run_suggested(server, renew).stdout.strip()
    server.wait_synced()
    assert httpx.get(index, auth=basic(renewed)).status_code == 200

    # A blocked file: the 403 names the command that explains the block.
    server.twine(make_wheel(tmp_path, "hint-blocky", "1.0"))
    server.wait_synced()
    page = httpx.get(
        f"{server.url}/pypi/latest/simple/hint-blocky/", headers={"accept": "application/vnd.pypi.simple.v1+json"}
    )
    url = page.json()["files"][0]["url"]  # before the block: blocked versions leave the page
    server.cli("policy", "block", "hint-blocky", "--reason", "CVE-2026-2", "--version", "==1.0")
    server.wait_synced()
    blocked = httpx.get(f"{server.url}/pypi/latest/simple/hint-blocky/{url}")
    assert blocked.status_code == 403
    [explain] = suggested(blocked.text)
    assert "is NOT served by repository `pypi`" in run_suggested(server, explain).stdout

    # A viewer's key cannot publish: the 403 names the command that makes them a publisher.
    server.cli("user", "create", "hint-vic", "--role", "viewer")
    key = server.cli("key", "create", "--user", "hint-vic", "-q").stdout.strip()
    denied = httpx.post(
        f"{server.url}/__api__/v1/content", json={"name": "hint-app"}, headers={"Authorization": f"Key {key}"}
    )
    assert denied.status_code == 403
    [promote] = suggested(denied.text)
    assert run_suggested(server, promote).returncode == 0


def test_commands_on_pages_run(server: Server) -> None:
    subprocess.run(
        [str(BIN / "packyard"), "user", "create", "hint-ada", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PACKYARD_DATA_DIR": str(server.data_dir)},
    )
    server.cli("repo", "create", "--name", "hint-secret", "--authenticated")
    server.wait_synced()
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/login").text
        login_page = suggested(form)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf
        signed_in = client.post(
            "/login", data={"username": "hint-ada", "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"}
        )
        assert signed_in.status_code == 303, signed_in.text
        commands = login_page + [
            command
            for path in ("/repos/hint-secret/setup", "/admin/sources/", "/admin/users/")
            for command in suggested(client.get(path).text)
        ]
    assert any(c.startswith("packyard token create") for c in commands)
    assert any(c.startswith("packyard repo subscribe") for c in commands)
    for command in commands:
        # NAME stands for a user the reader picks; the rest is as printed.
        run_suggested(server, command.replace("NAME", "hint-ada"), stdin=f"{PASSWORD}\n{PASSWORD}\n")
