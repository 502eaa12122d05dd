"""Time `uv pip install` of the 150-distribution dependency tree into a fresh venv with a cold uv cache."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from corpus import TREE_ROOT, TREE_SIZE
from servers import Target
from util import CLIENT_CORE, WORK, OtherLoad, clean_env, log, pinned, run, tool


@dataclass(frozen=True)
class InstallResult:
    server: str
    projects: int
    seconds: list[float]
    other_cores: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _installed(output: str) -> int:
    match = re.search(r"Installed (\d+) packages?", output)
    return int(match.group(1)) if match else 0


def scratch_root() -> Path:
    """Venvs and uv caches on tmpfs when there is one: installing 150 wheels is mostly small-file writes, and
    a disk shared with other work would add its own noise to what should be the server's figure."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30:
        return shm / "packyard-bench" / "install"
    return WORK / "install"


def install_once(target: Target, slug: str, rep: int, root: str = TREE_ROOT, expected: int = TREE_SIZE) -> float:
    """One timed `uv pip install <root>` from `target` into a fresh venv with a fresh cache; `expected` packages."""
    scratch = scratch_root() / f"{slug}-{rep}"
    shutil.rmtree(scratch, ignore_errors=True)
    # A new cache directory per repetition: every page, metadata file and wheel comes from the server.
    env = clean_env(scratch / "home", UV_CACHE_DIR=str(scratch / "cache"))
    venv = scratch / "venv"
    run([tool("uv"), "venv", "-q", "--python", sys.executable, str(venv)], env=env)
    cmd = [tool("uv"), "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", target.index_url]
    started = time.monotonic()
    result = run(pinned(CLIENT_CORE, [*cmd, root]), env=env, timeout=900)
    elapsed = time.monotonic() - started
    count = _installed(result.stderr + result.stdout)
    if count != expected:
        raise RuntimeError(f"{target.name}: uv installed {count} packages, expected {expected}:\n{result.stderr}")
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def measure(target: Target, projects: int, reps: int, budget: float) -> InstallResult:
    """`reps` timed installs, fewer (at least one) once `budget` seconds are spent: a slow server
    (pypiserver takes minutes per install) should not hold the whole run up."""
    slug = re.sub(r"\W+", "-", target.name).strip("-")
    started = time.monotonic()
    # One untimed install first: the server's own first-read caches are not what a cold client measures.
    install_once(target, slug, -1)
    seconds: list[float] = []
    meter = OtherLoad(target.service.process.pid)
    while len(seconds) < reps and (not seconds or time.monotonic() - started < budget):
        seconds.append(install_once(target, slug, len(seconds)))
    result = InstallResult(target.name, projects, seconds, meter.cores())
    runs = ", ".join(f"{s:.2f}" for s in seconds)
    log(f"{target.name} uv install @{projects}: median {result.median:.2f}s ({runs})")
    return result
