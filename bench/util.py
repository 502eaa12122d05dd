"""Paths, ports, pinned subprocesses and the HTTP readiness wait shared by every part of the benchmark."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
# The server under test gets core 0 to itself; wrk, uv and twine run on core 1.
SERVER_CORE = 0
CLIENT_CORE = 1


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pinned(core: int, cmd: list[str]) -> list[str]:
    """`cmd` restricted to one CPU; children (worker threads, uv's pool) inherit the mask."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def tool(name: str) -> str:
    """A console script of the project venv, else one on PATH."""
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"`{name}` is not installed; run `make bench` (it installs the project venv) first.")
    return path


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for clients that ignores this machine's own pip, uv and twine settings."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_", "PACKYARD_"))}
    env.update(
        HOME=str(home),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        NO_COLOR="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    env.update(extra)
    return env


def run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        shown = " ".join(cmd[:12]) + (f" ... ({len(cmd) - 12} more arguments)" if len(cmd) > 12 else "")
        raise RuntimeError(f"{shown} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@dataclass
class Service:
    """A server subprocess whose output goes to a log file; stopped politely, then killed."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def spawn(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> Service:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Service(name, process, log_path)


def wait_http(service: Service, url: str, timeout: float = 120) -> None:
    """Block until `url` answers below 500, or fail with the server's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{service.name} did not answer {url} within {timeout:.0f}s:\n{service.tail()}")
