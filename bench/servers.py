"""The four servers under test, each started pinned to the server core and filled with the corpus.

Packyard's and devpi's data directories are kept per corpus size under bench/.work, with a `.loaded` marker,
so later runs skip the slow load; `--fresh` throws them away."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from corpus import Corpus
from uploads import UploadRate, bulk_upload, by_project
from util import (
    BENCH,
    HOST,
    SERVER_CORE,
    WORK,
    Service,
    clean_env,
    free_port,
    git_commit,
    log,
    pinned,
    run,
    spawn,
    tool,
    wait_http,
)

_LOADED = ".loaded"
LOAD_TIMEOUT = 3 * 3600  # a bound, far above the 15 minutes 50,000 projects take
SOURCE = "local-python-src"
STAGING_SOURCE = "bench-load"
DEVPI_USER, DEVPI_PASSWORD, DEVPI_INDEX = "bench", "bench", "dev"
PYPISERVER_PACKAGES = ["pypiserver[cache]==2.4.2", "waitress==3.0.2", "passlib==1.7.4"]
DEVPI_PACKAGES = ["devpi-server==6.20.3", "devpi-client==7.3.0"]


@dataclass
class Target:
    """A running server: where its simple index is, and how to upload to it (when the benchmark does)."""

    name: str
    base: str
    simple_prefix: str
    service: Service
    upload_url: str | None = None
    credentials: tuple[str, str] | None = None
    load: UploadRate | None = None
    load_method: str = ""

    @property
    def index_url(self) -> str:
        return self.base + self.simple_prefix

    def page_path(self, project: str) -> str:
        return f"{self.simple_prefix}{project}/"

    def stop(self) -> None:
        self.service.stop()


def _side_venv(name: str, packages: list[str]) -> Path:
    """A venv of its own under bench/.work for a competitor, so it never touches the project's venv."""
    venv = WORK / "venvs" / name
    stamp = venv / ".bench-installed"
    if stamp.exists() and stamp.read_text() == "\n".join(packages):
        return venv / "bin"
    log(f"installing {', '.join(packages)} into {venv}")
    run([tool("uv"), "venv", "-q", "--allow-existing", "--python", sys.executable, str(venv)])
    run([tool("uv"), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *packages], timeout=900)
    stamp.write_text("\n".join(packages))
    return venv / "bin"


def _data_dir(name: str, corpus: Corpus, fresh: bool) -> Path:
    path = WORK / name / f"p{corpus.size}"
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _load_once(target: Target, data: Path, files: list[Path], loader: Callable[[list[Path]], UploadRate]) -> None:
    marker = data / _LOADED
    if marker.exists():
        # Kept data was written by the code of its day: the report says which commit, and `--fresh` reloads.
        _files, _seconds, *rest = marker.read_text().split(maxsplit=3) + ["?", "?"]
        target.load_method = f"kept from an earlier run: loaded at commit {rest[0]}, {rest[1].strip()}"
        log(f"{target.name}: corpus already loaded in {data} ({target.load_method})")
        return
    log(f"{target.name}: loading {len(files)} files")
    target.load = loader(files)
    log(f"{target.name}: loaded {len(files)} files in {target.load.seconds:.0f}s ({target.load.per_second:.0f}/s)")
    marker.write_text(f"{target.load.files} {target.load.seconds:.1f} {git_commit()} {target.load_method}\n")


# Packyard


def _packyard_cli(data: Path, *args: str) -> str:
    env = clean_env(WORK / "home" / "packyard", PACKYARD_DATA_DIR=str(data))
    return run([tool("packyard"), *args, "--data-dir", str(data)], env=env).stdout.strip()


def _packyard_token(data: Path, source: str) -> str:
    args = ["token", "create", "-q", "--description", f"bench {source}", "--scope", "sources:write"]
    return _packyard_cli(data, *args, "--sources", source)


def start_packyard(corpus: Corpus, fresh: bool, concurrency: int, staged: bool) -> Target:
    """Packyard on SQLite in its own data directory, loaded over its upload API.

    `staged` (for big corpora) stores the corpus with Packyard's own upload code in-process, into a source
    no repository serves yet, and then subscribes `pypi` to it: the pages are rendered once at the end instead
    of the root page being re-rendered for every new project (quadratic), and no HTTP is in the way."""
    data = _data_dir("packyard", corpus, fresh)
    port = free_port()
    base = f"http://{HOST}:{port}"
    (data / "packyard.toml").write_text(
        f'[server]\naddress = "{base}"\nhost = "{HOST}"\nport = {port}\naccess_log = false\n\n'
        '[authentication]\napi_token_auth = true\n\n[upload]\nmax_file_size = "100MiB"\n'
    )
    env = clean_env(WORK / "home" / "packyard", PACKYARD_SERVER_ACCESS_LOG="false")
    cmd = [tool("packyard"), "run", "--data-dir", str(data), "--port", str(port)]
    service = spawn("packyard", pinned(SERVER_CORE, cmd), data / "server.log", env)
    wait_http(service, f"{base}/__ping__")
    token = _packyard_token(data, SOURCE)
    target = Target(
        "packyard", base, "/pypi/latest/simple/", service, f"{base}/upload/pypi/{SOURCE}/", ("__token__", token)
    )

    def load(files: list[Path]) -> UploadRate:
        if staged and STAGING_SOURCE not in _packyard_cli(data, "source", "list"):
            _packyard_cli(data, "source", "create", "--name", STAGING_SOURCE)
        if staged:
            target.load_method = f"in-process `accept_upload` x2 into `{STAGING_SOURCE}`, then `repo subscribe`"
            rate = _load_in_process(data, STAGING_SOURCE, files, processes=2)
        else:
            target.load_method = f"upload API, {concurrency} connections"
            rate = bulk_upload(f"{base}/upload/pypi/{SOURCE}/", ("__token__", token), files, concurrency)
        if staged:
            began = time.monotonic()
            _packyard_cli(data, "repo", "subscribe", "--repo", "pypi", "--source", STAGING_SOURCE)
            log(f"packyard: subscribed pypi to {STAGING_SOURCE} in {time.monotonic() - began:.0f}s")
            rate = UploadRate(rate.files, rate.seconds + time.monotonic() - began)
        return rate

    try:
        _load_once(target, data, corpus.files(), load)
        if staged:
            _wait_serving(target, corpus.projects[-1])
    except BaseException:
        service.stop()
        raise
    return target


def _load_in_process(data: Path, source: str, files: list[Path], processes: int) -> UploadRate:
    """bench/packyard_load.py in parallel processes (unpinned: loading is not measured), projects split
    between them so no two ever create the same project."""
    started = time.monotonic()
    workers = []
    for i in range(processes):
        listing = data / f"load-{i}.list"
        listing.write_text("".join(f"{p}\n" for group in by_project(files)[i::processes] for p in group))
        cmd = [sys.executable, str(BENCH / "packyard_load.py"), str(data), source, str(listing)]
        workers.append(spawn(f"packyard loader {i}", cmd, data / f"load-{i}.log"))
    for worker in workers:
        if worker.process.wait(timeout=LOAD_TIMEOUT) != 0:
            raise RuntimeError(f"{worker.name} failed:\n{worker.tail()}")
    return UploadRate(len(files), time.monotonic() - started)


def _wait_serving(target: Target, project: str, timeout: float = 60) -> None:
    """The server applies a CLI subscription from the change log within a second or so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(target.base + target.page_path(project), timeout=30).status_code == 200:
            return
        time.sleep(0.5)
    raise RuntimeError(f"packyard does not serve {project} {timeout:.0f}s after the subscription")


# nginx


def _nginx_conf(root: Path, port: int, prefix: Path) -> str:
    # One worker on one core, no access log, and keep-alive connections that wrk never sees closed.
    return f"""worker_processes 1;
daemon off;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    types {{ text/html html; application/octet-stream whl; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen {HOST}:{port};
        root {root};
        index index.html;
    }}
}}
"""


def serve_static(static_dir: Path, name: str, folder: str) -> Target:
    """nginx on the server core serving a static PEP 503 tree (`simple/`, `packages/`) at `/simple/`."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = WORK / "nginx" / folder
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(_nginx_conf(static_dir.resolve(), port, prefix))
    service = spawn(name, pinned(SERVER_CORE, [nginx, "-p", str(prefix), "-c", str(conf)]), prefix / "out.log")
    base = f"http://{HOST}:{port}"
    wait_http(service, f"{base}/simple/")
    return Target(name, base, "/simple/", service)


def start_nginx(corpus: Corpus) -> Target:
    return serve_static(corpus.static_dir, "nginx (static)", f"p{corpus.size}")


# pypiserver


def start_pypiserver(corpus: Corpus) -> Target:
    bin_dir = _side_venv("pypiserver", PYPISERVER_PACKAGES)
    port = free_port()
    # pypiserver's fastest setup: `auto` picks waitress (installed for it) over bottle's single-threaded
    # wsgiref; cached-dir keeps the listing in memory (watchdog); `--hash-algo off` because with the default
    # sha256 every request re-hashes every file in the folder (0.35 s a request at 500 projects).
    cmd = [
        str(bin_dir / "pypi-server"),
        "run",
        "-p",
        str(port),
        "-i",
        HOST,
        "--server",
        "auto",
        "--backend",
        "cached-dir",
        "--hash-algo",
        "off",
        "--disable-fallback",
        "-a",
        ".",
        "-P",
        ".",
        str(corpus.files_dir),
    ]
    log_path = WORK / "pypiserver" / f"p{corpus.size}.log"
    service = spawn("pypiserver", pinned(SERVER_CORE, cmd), log_path)
    base = f"http://{HOST}:{port}"
    wait_http(service, f"{base}/health", timeout=300)
    return Target("pypiserver", base, "/simple/", service)


# devpi


def _devpi_client(bin_dir: Path, client_dir: Path, *args: str) -> str:
    env = clean_env(WORK / "home" / "devpi")
    return run([str(bin_dir / "devpi"), "--clientdir", str(client_dir), *args], env=env).stdout


def start_devpi(corpus: Corpus, fresh: bool) -> Target:
    bin_dir = _side_venv("devpi", DEVPI_PACKAGES)
    data = _data_dir("devpi", corpus, fresh)
    server_dir, client_dir = data / "server", data / "client"
    if not (server_dir / ".nodeinfo").exists():
        shutil.rmtree(server_dir, ignore_errors=True)
        run([str(bin_dir / "devpi-init"), "--serverdir", str(server_dir), "--no-root-pypi", "--root-passwd", "root"])
    port = free_port()
    base = f"http://{HOST}:{port}"
    cmd = [str(bin_dir / "devpi-server"), "--serverdir", str(server_dir), "--host", HOST, "--port", str(port)]
    service = spawn("devpi", pinned(SERVER_CORE, [*cmd, "--offline-mode"]), data / "server.log")
    wait_http(service, f"{base}/+api", timeout=300)
    prefix = f"/{DEVPI_USER}/{DEVPI_INDEX}/"
    target = Target("devpi", base, f"{prefix}+simple/", service, base + prefix, (DEVPI_USER, DEVPI_PASSWORD))
    try:
        _devpi_setup(bin_dir, client_dir, base)
        # The login token rather than the password: devpi checks a password with a deliberately slow hash on
        # every request (0.2 s of CPU), which would cap uploads near 5 files/s.
        target.credentials = (DEVPI_USER, _devpi_token(client_dir, base))
        target.load_method = "upload API, 4 connections"
        _load_once(
            target,
            data,
            corpus.files(),
            lambda files: bulk_upload(base + prefix, target.credentials or ("", ""), files, 4),
        )
    except BaseException:
        service.stop()
        raise
    return target


def _devpi_token(client_dir: Path, base: str) -> str:
    """The token `devpi login` stored for this server; devpi takes it as the password of basic auth."""
    entries = json.loads((client_dir / "auth.json").read_text())["auth"][base + "/"]
    return str(entries[-1][1])


def _devpi_setup(bin_dir: Path, client_dir: Path, base: str) -> None:
    """User `bench` with index `dev`, no bases: every lookup stays inside this server."""
    _devpi_client(bin_dir, client_dir, "use", base)
    users = _devpi_client(bin_dir, client_dir, "user", "-l")
    if DEVPI_USER not in users.split():
        _devpi_client(bin_dir, client_dir, "user", "-c", DEVPI_USER, f"password={DEVPI_PASSWORD}")
    _devpi_client(bin_dir, client_dir, "login", DEVPI_USER, "--password", DEVPI_PASSWORD)
    indexes = _devpi_client(bin_dir, client_dir, "index", "-l")
    if f"{DEVPI_USER}/{DEVPI_INDEX}" not in indexes.split():
        _devpi_client(bin_dir, client_dir, "index", "-c", DEVPI_INDEX, "bases=", "volatile=True")
