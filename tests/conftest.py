"""Fixtures that run a real Packyard server on 127.0.0.1, on SQLite and on PostgreSQL, and real clients."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.upstreams import Peers

from packyard.publishing.sandbox import Sandbox

# Shared fixtures defined beside the helpers they use: moto's S3 on loopback; the test CA and an HTTPS server.
pytest_plugins = ["tests.s3", "tests.tls"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def sandbox() -> Sandbox:
    """A sandbox as a server on this machine makes one, for tests that build environments in-process."""
    made = Sandbox("on", "packyard-content")
    made.probe()
    made.check()
    return made


PG_ADMIN_URL = os.environ.get("PACKYARD_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


def after_data_dir(stderr: str) -> str:
    """What a command said on stderr after naming its data directory, which it does first."""
    first, _, rest = stderr.partition("\n")
    assert first.startswith("Using data directory "), stderr
    return rest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def index(self) -> str:
        return f"{self.url}/pypi/latest/simple/"

    @property
    def ca_pem(self) -> str:
        """The CA a client must trust to reach this server: its `ca_bundle` when it serves HTTPS (tests/tls.py)."""
        return self.env.get("PACKYARD_SERVER_CA_BUNDLE", "") if self.url.startswith("https:") else ""

    @property
    def upload_url(self) -> str:
        return f"{self.url}/upload/pypi/local-python-src"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "PACKYARD_DATA_DIR": str(self.data_dir), "NO_COLOR": "1", "COLUMNS": "200"}
        if self.ca_pem:
            env["SSL_CERT_FILE"] = self.ca_pem  # `packyard add` to an HTTPS server: httpx reads it
        result = subprocess.run([str(BIN / "packyard"), *args], capture_output=True, text=True, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"packyard {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def token(self, *args: str) -> str:
        """A token from `packyard token create -q` with these extra arguments; cached per argument list."""
        key = " ".join(args)
        if key not in self.tokens:
            self.tokens[key] = self.cli("token", "create", "-q", "--description", f"test {key}", *args).stdout.strip()
        return self.tokens[key]

    @property
    def upload_token(self) -> str:
        return self.token("--scope", "sources:write", "--sources", "local-python-src")

    def twine(
        self, *files: Path, source: str = "local-python-src", token: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`twine upload` of these files into a source, with the default upload token unless one is given."""
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.data_dir), "NO_COLOR": "1"}
        if self.ca_pem:
            env["REQUESTS_CA_BUNDLE"] = self.ca_pem
        command = [
            str(BIN / "twine"),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            f"{self.url}/upload/pypi/{source}",
            "-u",
            "__token__",
            "-p",
            token or self.upload_token,
        ]
        return run([*command, *map(str, files)], env, check=check)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_synced(self) -> None:
        """CLI writes reach the server through the change log within half a second."""
        time.sleep(0.8)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def sql_url(self) -> str:
        """The server's database as SQLAlchemy names it (the default SQLite file, or the PostgreSQL URL)."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'packyard.db').resolve()}"

    def stop(self) -> None:
        stop_process(self.process)

    def restart(self) -> None:
        """Start the server again on the same port and data; its log goes on where it stopped."""
        self.stop()
        self.process = _start(self.data_dir, self.database_url, self.env, self.port).process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _start(data_dir: Path, database_url: str, env: dict[str, str] | None = None, port: int | None = None) -> Server:
    """`packyard run` on 127.0.0.1 (a free port unless given), with `PACKYARD_*` overrides from `env`; HTTPS when
    they set `PACKYARD_SERVER_TLS_CERTIFICATE` (tests/tls.py `tls_env`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    scheme = "https" if (env or {}).get("PACKYARD_SERVER_TLS_CERTIFICATE") else "http"
    (data_dir / "packyard.toml").write_text(
        f'[server]\naddress = "{scheme}://127.0.0.1:{port}"\nport = {port}\n\n'
        f'[database]\nurl = "{database_url}"\n\n[authentication]\napi_token_auth = true\n\n'
        '[upload]\nmax_file_size = "2MiB"\n'
    )
    log_path = data_dir / "server.log"
    process = subprocess.Popen(
        [str(BIN / "packyard"), "run", "--data-dir", str(data_dir)],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PACKYARD_DATA_DIR": str(data_dir), **(env or {})},
    )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded 2-core machine has taken over 30 s to import and start
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text()}")
        try:
            # Readiness only: the tests check the certificate with the clients they run.
            if httpx.get(f"{url}/__ping__", timeout=1, verify=False).status_code == 200:
                return Server(url, data_dir, log_path, process, database_url=database_url, env=dict(env or {}))
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A database URL for a new server: "" (SQLite in its data directory) or a new PostgreSQL database."""
    if kind == "sqlite":
        yield ""
        return
    dbname = f"packyard_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + dbname
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fresh server per test module, once on SQLite and once on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f"packyard-{request.param}")
    with fresh_database(request.param) as database_url:
        srv = _start(data_dir, database_url)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (tests/browser.py); each `sign_in` opens its own context. Not per
    session: Playwright's sync API keeps an event loop running in this thread while it is open, and a later module
    on the same worker that calls asyncio.run (test_apps.py) would fail."""
    # tests/browser.py imports this module (Server, BIN), and Playwright is only for the page tests.
    from tests.browser import chromium  # noqa: PLC0415

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def module_peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    """Upstreams (pypiserver, Packyard) and mirrors shared by a test module; all stopped at its end."""
    from tests.upstreams import Peers  # noqa: PLC0415 - tests/upstreams.py imports this module (Server, _start)

    peers = Peers(tmp_path_factory.mktemp("peers"))
    try:
        yield peers
    finally:
        peers.close()


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    """Upstreams and mirrors of one test (those that stop, hang or tamper with their upstream)."""
    from tests.upstreams import Peers  # noqa: PLC0415 - tests/upstreams.py imports this module (Server, _start)

    peers = Peers(tmp_path / "peers")
    try:
        yield peers
    finally:
        peers.close()


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    """An environment for pip, uv and twine that ignores this machine's own index and credential settings."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_", "PDM_"))}
    env.update(
        HOME=str(home),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        NETRC=str(home / ".netrc"),
        NO_COLOR="1",
        KEYRING_PROVIDER="fail",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    return env


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def venv(tmp_path: Path, client_env: dict[str, str]) -> Path:
    """A fresh, empty virtual environment to install into; pip reaches it with `pip --python`."""
    path = tmp_path / "venv"
    run([str(uv_bin()), "venv", "-q", "--python", sys.executable, str(path)], client_env)
    return path


def pip(venv: Path, *args: str) -> list[str]:
    """A pip command line that installs into `venv` (pip's own `--python` option)."""
    return [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args]


def uv_bin() -> Path:
    found = BIN / "uv"
    return found if found.exists() else Path(shutil.which("uv") or "uv")
