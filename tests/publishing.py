"""Helpers for the publishing tests: the wheels the test apps need, a publisher's key, and the real rsconnect."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BIN, ROOT, Server, _start, fresh_database

APPS = Path(__file__).parent / "apps"
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
# What each group of test apps installs, every package pinned with its hashes (`make wheelhouse` refreshes them).
REQUIREMENTS = Path(__file__).parent / "wheelhouse"


def pinned(name: str = "api") -> dict[str, str]:
    """The versions a wheelhouse pins, by project name: what tests may assert, since the suite chose them."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (REQUIREMENTS / f"{name}.txt").read_text(), re.MULTILINE)
    return dict(pins)


def wheelhouse(name: str = "api") -> Path:
    """The wheels of `tests/wheelhouse/<name>.txt`, downloaded once per checkout with their hashes checked, each
    set in its own folder so a module's server gets only the packages its apps use. A lock keeps two pytest
    workers from racing."""
    requirements = REQUIREMENTS / f"{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    folder = WHEELHOUSE / f"{name}-{digest}"
    done = folder / ".complete"
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    with open(WHEELHOUSE / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(folder), "--no-deps"]
            command += ["--only-binary=:all:", "--require-hashes", "-r", str(requirements)]
            subprocess.run(command, check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
            done.write_text(requirements.name)
    return folder


@dataclass
class Publishing:
    """A server with the test apps' packages in its `pypi` repository, a publisher, and rsconnect set up."""

    server: Server
    key: str
    home: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.key}"}

    def rsconnect(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(self.home),
            "RSCONNECT_DISABLE_VERSION_CHECK": "1",
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
        }
        result = subprocess.run(
            [str(BIN / "rsconnect"), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
        )
        if check and result.returncode != 0:
            command = " ".join(args)
            raise AssertionError(f"rsconnect {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def deploy(self, kind: str, app: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.rsconnect("deploy", kind, "-n", "packyard", *args, str(app), check=check)

    def record(self, app: Path) -> dict[str, Any]:
        """What rsconnect saved about its last deploy of `app` (its guid, id, URL)."""
        saved = json.loads((app / "rsconnect-python" / f"{app.name}.json").read_text())
        return saved[self.server.url]

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx trusts for this server: the test CA of an HTTPS server (tests/tls.py), else the default."""
        return ssl.create_default_context(cafile=self.server.ca_pem) if self.server.ca_pem else True

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **(headers or {})}
        return httpx.get(f"{self.server.url}{path}", headers=headers, timeout=60, verify=self.verify, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.server.url}/__api__{path}"
        return httpx.request(method, url, headers=self.headers, timeout=60, verify=self.verify, **kwargs)

    def wait_task(self, task_id: str) -> dict[str, Any]:
        lines: list[str] = []
        first = 0
        while True:
            task = self.api("GET", f"/v1/tasks/{task_id}", params={"first": first, "wait": 5}).json()
            lines += task["output"]
            first = task["last"]
            if task["finished"]:
                return {**task, "output": lines}


@contextmanager
def publishing_server(
    database: str, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Server]:
    """A server whose upload limit admits the test apps' wheels (pydantic-core is 2 MB); `env` adds overrides, and
    `port` chooses its port (a free one by default)."""
    with fresh_database(database) as url:
        server = _start(data_dir, url, {"PACKYARD_UPLOAD_MAX_FILE_SIZE": "50MiB", **(env or {})}, port)
        try:
            yield server
        finally:
            server.stop()


def setup_publishing(server: Server, home: Path, wheels: str | None = "api") -> Publishing:
    """A publisher `alice` with rsconnect pointed at `server`, whose `pypi` repository has the wheels of the
    wheelhouse `wheels` (the API apps' by default; none for None)."""
    if wheels is not None:
        server.cli("add", "--source", "local-python-src", "--path", str(wheelhouse(wheels)),
                   "--address", server.url, "--token", server.upload_token)  # fmt: skip
    server.cli("user", "create", "alice", "--role", "publisher")
    key = server.cli("key", "create", "--user", "alice", "-q").stdout.strip()
    home.mkdir(parents=True, exist_ok=True)
    publishing = Publishing(server, key, home)
    cacert = ["--cacert", server.ca_pem] if server.ca_pem else []  # an HTTPS server's test CA (tests/tls.py)
    publishing.rsconnect("add", "--server", server.url, "--name", "packyard", "--api-key", key, *cacert)
    return publishing


def copy_app(name: str, dest: Path) -> Path:
    """A fresh copy of a test app (rsconnect writes its deployment record into the app's folder)."""
    target = dest / name
    shutil.copytree(APPS / name, target)
    return target


def tarball(members: dict[str, bytes | tarfile.TarInfo]) -> bytes:
    """A .tar.gz with these members; a TarInfo value adds that entry as it is (links, devices)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, value in members.items():
            if isinstance(value, tarfile.TarInfo):
                tar.addfile(value)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return buffer.getvalue()


def manifest(appmode: str = "python-fastapi", entrypoint: str | None = "app", **extra: Any) -> bytes:
    document: dict[str, Any] = {"version": 1, "metadata": {"appmode": appmode}}
    if entrypoint is not None:
        document["metadata"]["entrypoint"] = entrypoint
    document["python"] = {
        "version": ".".join(map(str, sys.version_info[:3])),
        "package_manager": {"name": "pip", "version": "24", "package_file": "requirements.txt"},
    }
    document.update(extra)
    return json.dumps(document).encode()
