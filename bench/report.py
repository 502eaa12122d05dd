"""The results table, printed and written as markdown, with the machine facts and the targets from the issue."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from installs import InstallResult
from servers import DEVPI_PACKAGES, PYPISERVER_PACKAGES, Target
from uploads import UploadRate
from util import git_commit, tool
from wrk import ACCEPT, PageResult

PAGE_RPS_TARGET = 15_000
PAGE_P99_TARGET_MS = 5.0
INSTALL_RATIO_TARGET = 1.2
TWINE_RATE_TARGET = 150.0
STATIC = "nginx (static)"
PAGE_TARGET = f">= {PAGE_RPS_TARGET:,}/s, p99 < {PAGE_P99_TARGET_MS:.0f} ms"
# Cores busy with anything but the server under test and the benchmark's own clients while it was measured.
OTHER = "Other CPU"


@dataclass(frozen=True)
class LoadResult:
    server: str
    projects: int
    rate: UploadRate | None
    method: str


@dataclass
class Results:
    command: str
    connections: int
    seconds: int
    pages: list[PageResult] = field(default_factory=list)
    installs: list[InstallResult] = field(default_factory=list)
    twine: list[tuple[str, int, list[UploadRate], float]] = field(default_factory=list)
    loads: list[LoadResult] = field(default_factory=list)
    mirror: list[InstallResult] = field(default_factory=list)

    def record_load(self, target: Target, projects: int) -> None:
        if target.load_method:
            self.loads.append(LoadResult(target.name, projects, target.load, target.load_method))


def _output(cmd: list[str]) -> str:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (result.stdout + result.stderr).strip().splitlines()[0] if (result.stdout + result.stderr).strip() else "?"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "?"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else "?"


def _memory() -> str:
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    except OSError:
        return "?"
    return f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else "?"


def machine_facts(command: str) -> list[tuple[str, str]]:
    commit = git_commit()
    return [
        ("Date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("Command", f"`{command}`"),
        ("Commit", commit.rstrip("+") + (" plus uncommitted changes in src/" if commit.endswith("+") else "")),
        ("CPU", f"{_cpu_model()}, nproc {os.cpu_count()}"),
        ("Memory", _memory()),
        ("Kernel", platform.release()),
        ("Python", platform.python_version()),
        ("Packyard", metadata.version("packyard")),
        ("Clients", f"{_output([tool('uv'), '--version'])}; twine {metadata.version('twine')}"),
        ("Load generator", _output(["wrk", "--version"]).split(" Copyright")[0]),
        ("Others", f"{_output(['nginx', '-v'])}; {', '.join(PYPISERVER_PACKAGES + DEVPI_PACKAGES)}"),
        ("Pinning", "server `taskset -c 0`; wrk, uv and twine `taskset -c 1`"),
    ]


def _verdict(ok: bool) -> str:
    return "meets" if ok else "**misses**"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _page_row(r: PageResult) -> list[str]:
    target = ""
    if r.server == "packyard":
        target = _verdict(r.requests_per_second >= PAGE_RPS_TARGET and r.p99_ms < PAGE_P99_TARGET_MS)
    figures = [f"{r.requests_per_second:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", str(r.errors)]
    return [r.server, f"{r.projects:,}", r.variant, *figures, f"{r.other_cores:.2f}", target]


def pages_table(results: Results) -> list[str]:
    header = ["Server", "Projects", "Accept", "Req/s", "p50 ms", "p99 ms", "Errors", OTHER, PAGE_TARGET]
    return _table(header, [_page_row(r) for r in results.pages])


def flatness(results: Results) -> list[str]:
    """Packyard's JSON figure at each corpus size relative to its best, to show whether it stays flat."""
    by_size = {
        r.projects: r.requests_per_second for r in results.pages if r.server == "packyard" and r.variant == "json"
    }
    if len(by_size) < 2:
        return []
    best = max(by_size.values())
    parts = [f"{size:,}: {rps / best:.0%}" for size, rps in sorted(by_size.items())]
    return [f"Packyard JSON throughput by corpus size, relative to its best: {'; '.join(parts)}."]


def installs_table(results: Results) -> list[str]:
    static = {r.projects: r.median for r in results.installs if r.server == STATIC}
    rows = []
    for r in results.installs:
        base = static.get(r.projects)
        ratio = f"{r.median / base:.2f}x" if base else "-"
        target = _verdict(r.median <= INSTALL_RATIO_TARGET * base) if base and r.server == "packyard" else ""
        runs = ", ".join(f"{s:.2f}" for s in r.seconds)
        rows.append([r.server, f"{r.projects:,}", f"{r.median:.2f}", runs, ratio, f"{r.other_cores:.2f}", target])
    header = ["Server", "Projects", "Median s", "Runs s", "vs static", OTHER, f"<= {INSTALL_RATIO_TARGET}x static"]
    return _table(header, rows)


def twine_table(results: Results) -> list[str]:
    rows = []
    for server, projects, rates, other in results.twine:
        median = statistics.median(r.per_second for r in rates)
        target = _verdict(median >= TWINE_RATE_TARGET) if server == "packyard" else ""
        runs = ", ".join(f"{r.per_second:.0f}" for r in rates)
        rows.append([server, f"{projects:,}", str(rates[0].files), f"{median:.0f}", runs, f"{other:.2f}", target])
    header = ["Server", "Projects loaded", "Files", "Median files/s", "Runs files/s", OTHER]
    header.append(f">= {TWINE_RATE_TARGET:.0f}/s")
    return _table(header, rows)


def mirror_table(results: Results) -> list[str]:
    direct = next((r.median for r in results.mirror if r.server.startswith("upstream directly")), None)
    rows = []
    for r in results.mirror:
        ratio = f"{r.median / direct:.2f}x" if direct else "-"
        runs = ", ".join(f"{s:.2f}" for s in r.seconds)
        rows.append([r.server, f"{r.median:.2f}", runs, ratio, f"{r.other_cores:.2f}"])
    return _table(["Index", "Median s", "Runs s", "vs direct", OTHER], rows)


def loads_table(results: Results) -> list[str]:
    rows = []
    for r in results.loads:
        figures = [str(r.rate.files), f"{r.rate.seconds:.0f}", f"{r.rate.per_second:.0f}"] if r.rate else ["-"] * 3
        rows.append([r.server, f"{r.projects:,}", *figures, r.method])
    return _table(["Server", "Projects", "Files", "Seconds", "Files/s", "How"], rows)


def _pages_section(results: Results) -> list[str]:
    run = f"wrk -t1 -c{results.connections} -d{results.seconds}s --latency"
    accept = "; ".join(f"{k} = `{v}`" for k, v in ACCEPT.items())
    lines = ["", f"### Project pages (`GET <index>/<project>/`, {run})", "", f"Accept headers: {accept}.", ""]
    lines += [f"{OTHER}: cores used by other processes during the run (0 on a quiet machine; 2 cores in all).", ""]
    notes = flatness(results)
    return lines + pages_table(results) + ([""] + notes if notes else [])


def markdown(results: Results) -> str:
    lines = ["## Packyard benchmark", ""]
    lines += [f"- **{k}**: {v}" for k, v in machine_facts(results.command)]
    if results.pages:
        lines += _pages_section(results)
    if results.installs:
        lines += ["", "### `uv pip install` of a 150-distribution tree (fresh venv, cold cache)", ""]
        lines += installs_table(results)
    if results.twine:
        lines += ["", "### `twine upload` (one invocation per run)", ""] + twine_table(results)
    if results.mirror:
        lines += ["", "### `uv pip install` of a 30-package tree through a caching mirror (fresh venv, cold uv cache)"]
        lines += ["", "Upstream: nginx serving a static tree with `.metadata`. Cold: each a mirror's first install,"]
        lines += ["into an empty mirror; cached: later installs from the last of them. Same run, same corpus.", ""]
        lines += mirror_table(results)
    if results.loads:
        title = "### Corpus load (how the benchmark filled the server; not a target)"
        lines += ["", title, ""] + loads_table(results)
    return "\n".join(lines) + "\n"
