"""Paths, ports, pinned subprocesses and the HTTP readiness wait shared by every part of the benchmark."""

from __future__ import annotations

import os
import resource
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


def git_commit() -> str:
    """The checked-out commit, with `+` when src/ has uncommitted changes (the editable install runs them)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "src"], capture_output=True, text=True
    )
    return (head.stdout.strip() or "?") + ("+" if dirty.stdout.strip() else "")


def wheelhouse(*names: str) -> Path:
    """The wheels of the test suite's pinned wheelhouses (`tests/wheelhouse/<name>.txt`), hashes checked."""
    folder = WORK / ("wheels-" + "-".join(names))
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        for name in names:
            requirements = ROOT / "tests" / "wheelhouse" / f"{name}.txt"
            log(f"downloading the wheels pinned in {requirements.relative_to(ROOT)}")
            command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(folder), "--no-deps"]
            subprocess.run([*command, "--only-binary=:all:", "--require-hashes", "-r", str(requirements)], check=True)
        done.write_text(" ".join(names))
    return folder


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


def _busy_seconds() -> float:
    """CPU time all cores spent busy since boot (/proc/stat), in seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _tree_seconds(root: int) -> float:
    """CPU time (user + system) of a process, its threads and its live descendants (nginx's worker)."""
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        spent[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, seconds in spent.items():
        node = pid
        while node > 1 and node != root:
            node = parents.get(node, 0)
        total += seconds if node == root else 0.0
    return total


def _own_seconds() -> float:
    """This process and its reaped children (wrk, uv, twine once they exit)."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


class OtherLoad:
    """How many cores' worth of CPU went to anything but the server and our own clients during a measurement:
    the other engineer's tests on a shared machine show up here, so a noisy figure can be told from a slow one."""

    def __init__(self, server_pid: int, *more_server_pids: int) -> None:
        # A mirror and its upstream are both "the server" of a mirrored install.
        self.server_pids = (server_pid, *more_server_pids)
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        servers = sum(_tree_seconds(pid) for pid in self.server_pids)
        return time.monotonic(), _busy_seconds(), servers, _own_seconds()

    def cores(self) -> float:
        end = self._sample()
        wall = end[0] - self._start[0]
        ours = (end[2] - self._start[2]) + (end[3] - self._start[3])
        return max(0.0, (end[1] - self._start[1]) - ours) / wall if wall > 0 else 0.0
