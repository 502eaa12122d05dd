"""Scale to zero and the proxy's cost, for the FastAPI test app: the first request after its last process stopped
for `idle_timeout`, and requests per second through `/content/<guid>/` against the same app under plain uvicorn on a
TCP port. Run with `make bench-scaling`; see bench/README.md."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from util import BENCH, HOST, WORK, free_port, git_commit, log
from wrk import rate

from apps import APPS, Server, bundle, deploy, first_byte, wheels

DATA = WORK / "scaling"


def pids(http: httpx.Client, guid: str) -> list[int]:
    return [job["pid"] for job in http.get(f"/__api__/v1/content/{guid}/jobs").raise_for_status().json()]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def direct(data: Path) -> subprocess.Popen[bytes]:
    """The app under plain uvicorn on a TCP port, from the environment Packyard built, with no sandbox (a content
    process serves only a Unix socket that wrk cannot reach)."""
    python = next((data / "environments").glob("*/bin/python"))
    port = free_port()
    command = [str(python), "-m", "uvicorn", "app:app", "--host", HOST, "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, cwd=APPS / "fastapi-app", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.url = f"http://{HOST}:{port}/"  # type: ignore[attr-defined]
    for _ in range(200):
        try:
            httpx.get(process.url)  # type: ignore[attr-defined]
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("uvicorn did not start")


def wrk(url: str, key: str, connections: int, seconds: int) -> tuple[float, float]:
    return rate(url, f"Authorization: Key {key}", connections, seconds)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5, help="cold starts after a scale to zero, and wrk rounds")
    parser.add_argument("--connections", type=int, default=8, help="wrk's keep-alive connections")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    parser.add_argument("--out", type=Path, default=BENCH / "scaling-results.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("`wrk` is not installed; `make bench` installs it (apt-get install wrk).")
    folder = wheels()
    server = Server(DATA)
    cold: list[float] = []
    uvicorn = None
    rounds: dict[str, list[tuple[float, float]]] = {"direct": [], "proxy": []}
    try:
        key = server.load(folder)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Key {key}"}, timeout=300) as http:
            log("deploying the FastAPI app")
            guid = deploy(http, "fastapi-app", bundle("python-fastapi", "fastapi-app", "app"))
            http.patch(f"/__api__/v1/content/{guid}", json={"idle_timeout": 1}).raise_for_status()
            for rep in range(args.reps):
                first_byte(http, guid)
                running = pids(http, guid)
                deadline = time.monotonic() + 30
                while pids(http, guid) or not all(map(gone, running)):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the app did not stop after its idle timeout")
                    time.sleep(0.05)
                cold.append(first_byte(http, guid))
                log(f"rep {rep + 1}: first byte {cold[-1]:.3f} s after a scale to zero")
            # One process, kept; the direct figure is the same app under plain uvicorn from the same environment.
            http.patch(f"/__api__/v1/content/{guid}", json={"idle_timeout": 3600, "max_processes": 1})
            first_byte(http, guid)
            uvicorn = direct(server.data)
            urls = {"direct": uvicorn.url, "proxy": f"{server.url}/content/{guid}/"}  # type: ignore[attr-defined]
            wrk(urls["proxy"], key, args.connections, 2)  # warm-up
            for rep in range(args.reps):
                for name in ("direct", "proxy") if rep % 2 == 0 else ("proxy", "direct"):
                    rounds[name].append(wrk(urls[name], key, args.connections, args.duration))
                    log(f"rep {rep + 1}: {name} {rounds[name][-1][0]:,.0f} req/s, p50 {rounds[name][-1][1]:.2f} ms")
    finally:
        if uvicorn is not None:
            uvicorn.terminate()
            uvicorn.wait(30)
        server.stop()

    rps = {name: statistics.median(r for r, _ in rounds[name]) for name in rounds}
    p50 = {name: statistics.median(p for _, p in rounds[name]) for name in rounds}
    report = [
        f"# Scale to zero and the proxy's cost ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()})",
        "",
        f"Command: `make bench-scaling BENCH_ARGS='--reps {args.reps} --connections {args.connections} --duration "
        f"{args.duration}'`, on a machine with {os.cpu_count()} cores ({socket.gethostname()}). The FastAPI test app"
        " (`tests/apps/fastapi-app`) deployed through the API, one process (`max_processes` 1); the server, the app"
        " and wrk share the cores, unpinned, for both figures.",
        "",
        "| figure | result | target (issue 5) |",
        "|---|---|---|",
        f"| first byte of `GET /content/<guid>/` after a scale to zero (`idle_timeout` 1 s; median, min, max of "
        f"{args.reps}) | {statistics.median(cold):.2f} s ({min(cold):.2f}, {max(cold):.2f}) | under 3 s |",
        f"| requests/s, the app under plain uvicorn on TCP | {rps['direct']:,.0f} (p50 {p50['direct']:.2f} ms) | |",
        f"| requests/s through the proxy, with the key checked | {rps['proxy']:,.0f} (p50 {p50['proxy']:.2f} ms) | |",
        f"| proxy / direct | {rps['proxy'] / rps['direct']:.0%}, median +{p50['proxy'] - p50['direct']:.2f} ms |"
        " at least 85%, under +2 ms |",
        "",
        f"Requests/s and p50 are medians of {args.reps} wrk rounds of {args.duration} s each, {args.connections}"
        " keep-alive connections, direct and proxy alternating.",
    ]
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
