"""Server-host commands on a data directory: defaults on first use, sources, repositories, tokens, errors."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from packyard.auth.models import Token
from packyard.config import load_settings
from packyard.db import Database, utcnow
from packyard.publishing.models import Content
from packyard.publishing.users import create_user
from tests.conftest import BIN, free_port, stop_process


@pytest.fixture
def packyard(tmp_path: Path):  # type: ignore[no-untyped-def]
    """`packyard` on a data directory that `packyard init` created."""
    env = {**os.environ, "PACKYARD_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1", "COLUMNS": "200"}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "packyard"), *args], capture_output=True, text=True, env=env)

    assert call("init").returncode == 0
    return call


def test_init_creates_defaults_and_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = cli("init", "--data-dir", str(data))
    assert created.returncode == 0, created.stderr
    assert f"Created data directory {data}" in created.stderr
    assert (data / "packyard.toml").exists() and (data / "packyard.db").exists()
    result = cli("repo", "list", env={"PACKYARD_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert f"Using data directory {data}\n" == result.stderr
    assert "pypi" in result.stdout and "local-python-src" in result.stdout
    assert "local-python-src  local-python  0" in cli("source", "list", "--data-dir", str(data)).stdout


@pytest.mark.parametrize("args", [("token", "create", "--description", "x", "--scope", "admin"), ("repo", "list")])
def test_commands_elsewhere_refuse_to_create_a_data_directory(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"error: No Packyard data directory at `{tmp_path / 'packyard-data'}`" in result.stderr
    assert "`--data-dir DIR` or `PACKYARD_DATA_DIR=DIR`" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_sources_and_repositories(packyard) -> None:  # type: ignore[no-untyped-def]
    assert packyard("source", "create", "--name", "team-src").returncode == 0
    created = packyard("repo", "create", "--name", "team", "--authenticated")
    assert "http://127.0.0.1:4242/team/latest/simple/" in created.stdout
    assert "priority 1" in packyard("repo", "subscribe", "--repo", "team", "--source", "team-src").stdout
    assert "priority 2" in packyard("repo", "subscribe", "--repo", "team", "--source", "local-python-src").stdout
    listing = packyard("repo", "list").stdout
    assert "team-src, local-python-src" in listing and "yes" in listing
    assert "now public" in packyard("repo", "edit", "--name", "team", "--public").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("source", "create", "--name", "local-python-src"), "error: Source `local-python-src` already exists."),
        (("source", "create", "--name", "x", "--type", "cran"), "Source type `cran` is not supported"),
        (("source", "create", "--name", "Bad Name"), "Source name 'Bad Name' is not valid"),
        (("repo", "create", "--name", "upload"), "reserved for Packyard's own URLs"),
        (("repo", "subscribe", "--repo", "nope", "--source", "local-python-src"), "Repository `nope` does not exist"),
        (("repo", "subscribe", "--repo", "pypi", "--source", "nope"), "Known sources: `local-python-src`"),
        (("repo", "subscribe", "--repo", "pypi", "--source", "local-python-src"), "already serves source"),
        (("token", "revoke", "nope"), "No token with id `nope`"),
        (
            ("token", "create", "--description", "x", "--scope", "sources:write", "--sources", "local-python-src,typo"),
            "error: Source `typo` does not exist; the sources on this server are `local-python-src` (or use `*`",
        ),
        (
            ("token", "create", "--description", "x", "--scope", "repos:read", "--repos", "privat"),
            "error: Repository `privat` does not exist; the repositories on this server are `pypi` (or use `*`",
        ),
        (
            ("token", "create", "--description", "x", "--scope", "sources:write", "--expires", "1y", "--sources", "*"),
            "Expiry '1y' is not valid",
        ),
    ],
)
def test_errors_say_what_to_fix(packyard, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    result = packyard(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_token_lifecycle(packyard) -> None:  # type: ignore[no-untyped-def]
    created = packyard(
        "token",
        "create",
        "--description",
        "ci",
        "--scope",
        "sources:write",
        "--sources",
        "local-python-src",
        "--expires",
        "30d",
    )
    assert created.returncode == 0
    token = created.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token  # only the token on stdout
    assert "Record it now" in created.stderr
    listing = packyard("token", "list").stdout
    jti = next(line.split()[0] for line in listing.splitlines() if " ci " in line)
    assert "active" in listing and "sources=local-python-src" in listing
    assert packyard("token", "revoke", jti).returncode == 0
    assert "revoked" in packyard("token", "list").stdout


def test_bad_config_file_is_reported(packyard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data" / "packyard.toml").write_text("[database]\nurll = 'x'\n")
    result = packyard("repo", "list")
    assert result.returncode == 1
    assert "unknown key `database.urll`" in result.stderr


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`packyard` with these arguments, outside any test server, in an 160-column terminal without colors."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    environ.update(NO_COLOR="1", COLUMNS="160", **(env or {}))
    return subprocess.run([str(BIN / "packyard"), *args], capture_output=True, text=True, env=environ, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("token", "list", "--help"), ["[env var: PACKYARD_DATA_DIR]", "[default: (./packyard-data)]"]),
        (("add", "-h"), ["[env var: PACKYARD_ADDRESS]", "[env var: PACKYARD_TOKEN]"]),
        (("env", "prune", "-h"), ["[default: (`[python] environment_reap_frequency`)]"]),
        (("source", "create", "-h"), ["default: `[mirror] upstream`."]),
        (("mirror", "prefetch", "-h"), ["[env var: PACKYARD_ADDRESS]"]),
    ],
)
def test_help_shows_defaults_and_variables(args: tuple[str, ...], shown: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    for text in shown:
        assert text in result.stdout


def test_version_and_short_help() -> None:
    assert cli("--version").stdout == f"packyard {version('packyard')}\n"
    assert "Usage: packyard token create" in cli("token", "create", "-h").stdout


@contextmanager
def running(*args: str, cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """`packyard run` with these arguments (no test configuration written), until it answers on its port."""
    command = [str(BIN / "packyard"), "run", *args] if args[:1] != ("packyard",) else [str(BIN / args[0]), *args[1:]]
    port = int(command[command.index("--port") + 1])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**environ, "NO_COLOR": "1"}, cwd=cwd
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "server did not start"
            try:
                httpx.get(f"http://127.0.0.1:{port}/__ping__", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield process
    finally:
        stop_process(process)  # type: ignore[arg-type]


def test_address_follows_the_port_it_runs_on(tmp_path: Path) -> None:
    data, first, second = tmp_path / "data", free_port(), free_port()
    with running("--data-dir", str(data), "--port", str(first)):
        page = httpx.get(f"http://127.0.0.1:{first}/repos/pypi/setup").text
        assert f"http://127.0.0.1:{first}/pypi/latest/simple/" in page and ":4242" not in page
        listed = cli("repo", "list", "--data-dir", str(data)).stdout
        assert f"http://127.0.0.1:{first}/pypi/latest/simple/" in listed
    assert "address" not in tomllib.loads((data / "packyard.toml").read_text())["server"]
    with running("--data-dir", str(data), "--port", str(second)):
        page = httpx.get(f"http://127.0.0.1:{second}/repos/pypi/setup").text
        assert f"http://127.0.0.1:{second}/pypi/latest/simple/" in page and f":{first}/" not in page
    # An address the operator sets stays, whatever the port.
    config = data / "packyard.toml"
    config.write_text(config.read_text().replace("[server]\n", '[server]\naddress = "https://pkgs.example.com"\n'))
    with running("--data-dir", str(data), "--port", str(first)):
        assert (
            "https://pkgs.example.com/pypi/latest/simple/"
            in httpx.get(f"http://127.0.0.1:{first}/repos/pypi/setup").text
        )
        assert "https://pkgs.example.com/pypi/latest/simple/" in cli("repo", "list", "--data-dir", str(data)).stdout


def test_a_busy_port_is_refused_before_listening(tmp_path: Path) -> None:
    port = free_port()
    with running("--data-dir", str(tmp_path / "data"), "--port", str(port)):
        result = cli("run", "--data-dir", str(tmp_path / "data"), "--port", str(port))
    assert result.returncode == 1
    assert "listening" not in result.stdout
    assert f"error: Port {port} on `127.0.0.1` is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    hint = result.stderr.split("hint: ", 1)[1]
    assert f"`packyard run --data-dir {tmp_path / 'data'} --port " in hint and " PORT=" in hint
    suggested = hint.split("`")[1]
    with running(*shlex.split(suggested)):  # the suggested command serves, as printed
        pass


GUIDS = ["aaaa1111-0000-4000-8000-000000000001", "aaaa2222-0000-4000-8000-000000000002"]
JTIS = ["cccc1111-0000-4000-8000-000000000003", "cccc2222-0000-4000-8000-000000000004"]


def test_ids_are_listed_whole_and_taken_by_prefix(packyard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]

    db = Database(load_settings(tmp_path / "data", environ={}).database_url)
    with db.session() as session:  # two of each whose ids share a prefix, made directly to choose the ids
        owner = create_user(session, "ann", "publisher")
        session.flush()
        session.add_all(Content(guid=guid, name=f"app-{i}", owner_id=owner.id) for i, guid in enumerate(GUIDS))
        session.add_all(
            Token(jti=jti, description=f"t{i}", scopes="admin", created_at=utcnow()) for i, jti in enumerate(JTIS)
        )
    db.dispose()
    environ = {"PACKYARD_DATA_DIR": str(tmp_path / "data")}
    for listing in (cli("token", "list", env=environ), cli("content", "list", env=environ)):  # 80 columns, piped
        assert listing.returncode == 0 and "…" not in listing.stdout
    assert (
        JTIS[0] in cli("token", "list", env=environ).stdout and GUIDS[1] in cli("content", "list", env=environ).stdout
    )

    assert packyard("token", "revoke", "cccc1").stdout == f"Revoked token `{JTIS[0]}`.\n"
    ambiguous = packyard("token", "revoke", "cccc")
    assert ambiguous.returncode == 1
    assert f"error: `cccc` matches 2 tokens: `{JTIS[0]}`, `{JTIS[1]}`" in ambiguous.stderr
    assert "No token with id `dddd`; `packyard token list` shows them" in packyard("token", "revoke", "dddd").stderr

    by_name = packyard("content", "runtime", "app-1")
    assert by_name.returncode == 0, by_name.stderr
    assert "max_processes" in by_name.stdout
    assert packyard("content", "runtime", "aaaa2", "--max-processes", "2").returncode == 0
    assert "max_processes          2" in packyard("content", "runtime", GUIDS[1]).stdout
    ambiguous = packyard("content", "runtime", "aaaa")
    assert f"error: `aaaa` matches 2 contents: `{GUIDS[0]}` (app-0), `{GUIDS[1]}` (app-1)" in ambiguous.stderr
    assert f"No content `{GUIDS[0]}` has run on this server" in packyard("content", "logs", "aaaa1").stderr
