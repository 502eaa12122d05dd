"""What the sandbox costs, for the FastAPI test app: the same figures from a server with `[applications] sandbox`
"off" (before) and "on" (after), in one run, alternating which goes first. Run with `make bench-sandbox`; see
bench/README.md."""

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
from scaling import direct, gone, pids, wrk
from util import BENCH, WORK, git_commit, log

from apps import APPS, Server, bundle, deploy, first_byte, wheels
from packyard.publishing.sandbox import Mount, Quota, Sandbox, python_mounts

MODES = ("off", "on")
FIGURES = ("cold", "redeploy", "zero", "proxy", "direct")


def redeploy(http: httpx.Client, guid: str, data: bytes) -> float:
    """Seconds from uploading the same bundle again to its deploy task's end (the environment is reused)."""
    began = time.monotonic()
    bundle_id = http.post(f"/__api__/v1/content/{guid}/bundles", content=data).raise_for_status().json()["id"]
    task = http.post(f"/__api__/v1/content/{guid}/deploy", json={"bundle_id": bundle_id}).json()["task_id"]
    while not (state := http.get(f"/__api__/v1/tasks/{task}", params={"wait": 10}).json())["finished"]:
        pass
    if state["code"]:
        raise RuntimeError(f"redeploy failed: {state['error']}")
    return time.monotonic() - began


def scale_from_zero(http: httpx.Client, guid: str) -> float:
    running = pids(http, guid)
    deadline = time.monotonic() + 30
    while pids(http, guid) or not all(map(gone, running)):
        if time.monotonic() > deadline:
            raise RuntimeError("the app did not stop after its idle timeout")
        time.sleep(0.05)
    return first_byte(http, guid)


def measure(mode: str, args: argparse.Namespace, folder: Path) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {name: [] for name in FIGURES}
    server = Server(WORK / f"sandbox-{mode}", {"PACKYARD_APPLICATIONS_SANDBOX": mode})
    uvicorn = None
    try:
        key = server.load(folder)
        data = bundle("python-fastapi", "fastapi-app", "app")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Key {key}"}, timeout=300) as http:
            guid = deploy(http, "fastapi-app", data)
            for _ in range(args.reps):
                found["redeploy"].append(redeploy(http, guid, data))
        for _ in range(args.reps):
            server.stop()
            server.start()
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Key {key}"}, timeout=300) as http:
                found["cold"].append(first_byte(http, guid))
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Key {key}"}, timeout=300) as http:
            http.patch(f"/__api__/v1/content/{guid}", json={"idle_timeout": 1}).raise_for_status()
            for _ in range(args.reps):
                first_byte(http, guid)
                found["zero"].append(scale_from_zero(http, guid))
            http.patch(f"/__api__/v1/content/{guid}", json={"idle_timeout": 3600, "max_processes": 1})
            first_byte(http, guid)
        uvicorn = direct(server.data)
        urls = {"proxy": f"{server.url}/content/{guid}/", "direct": uvicorn.url}  # type: ignore[attr-defined]
        wrk(urls["proxy"], key, args.connections, 2)  # warm-up
        for rep in range(args.reps):
            for name in ("direct", "proxy") if rep % 2 == 0 else ("proxy", "direct"):
                found[name].append(wrk(urls[name], key, args.connections, args.duration)[0])
        log(f"sandbox {mode}: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in found.items()))
    finally:
        if uvicorn is not None:
            uvicorn.terminate()
            uvicorn.wait(30)
        server.stop()
    return found


def spawn_cost(reps: int) -> dict[str, float]:
    """Milliseconds (medians) to run `/bin/true`, and to import the app as the harness does, bare and sandboxed,
    alternating: what one process start pays for the sandbox, without a server in the way."""
    box = Sandbox("on", "packyard-content")
    box.probe()
    box.check()
    python = next((WORK / "sandbox-on" / "environments").glob("*/bin/python"))
    app = APPS / "fastapi-app"
    load = [str(python), "-c", "import sys; sys.path.insert(0, '.'); import uvicorn, app"]
    quota = Quota(4 * 1024**3, 512, 4096)
    commands = {
        "true": ["/bin/true"],
        "true sandboxed": box.command(["/bin/true"], mounts=[], cwd="/", quota=quota),
        "import": load,
        "import sandboxed": box.command(load, mounts=[Mount(app), *python_mounts(python)], cwd=str(app), quota=quota),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(reps):
        for name, command in commands.items():
            began = time.perf_counter()
            subprocess.run(command, check=True, cwd=app, env=box.environ(python), capture_output=True)
            times[name].append((time.perf_counter() - began) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5, help="redeploys, cold starts, scale-from-zero and wrk rounds")
    parser.add_argument("--connections", type=int, default=8, help="wrk's keep-alive connections")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=2, help="servers per mode, the modes alternating")
    parser.add_argument("--out", type=Path, default=BENCH / "sandbox-results.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("bwrap") is None:
        raise SystemExit("`wrk` or `bwrap` is missing; `make bench-sandbox` installs both.")
    folder = wheels()
    results: dict[str, dict[str, list[float]]] = {mode: {name: [] for name in FIGURES} for mode in MODES}
    for rounds in range(args.rounds):
        for mode in MODES if rounds % 2 == 0 else MODES[::-1]:
            for name, values in measure(mode, args, folder).items():
                results[mode][name] += values

    def med(mode: str, name: str) -> float:
        return statistics.median(results[mode][name])

    def row(label: str, name: str, unit: str, target: str) -> str:
        cells = [f"{med(mode, name):.3f} {unit} ({min(results[mode][name]):.3f}–{max(results[mode][name]):.3f})"
                 for mode in MODES]  # fmt: skip
        return f"| {label} | {cells[0]} | {cells[1]} | {target} |"

    ratio = {mode: med(mode, "proxy") / med(mode, "direct") for mode in MODES}
    spawn = spawn_cost(20)
    count = args.reps * args.rounds
    report = [
        f"# The sandbox's cost ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()})",
        "",
        f"Command: `make bench-sandbox BENCH_ARGS='--reps {args.reps} --rounds {args.rounds} --connections "
        f"{args.connections} --duration {args.duration}'`, on a machine with {os.cpu_count()} cores "
        f"({socket.gethostname()}). The FastAPI test app (`tests/apps/fastapi-app`), deployed through the API to a "
        'server on SQLite with `[applications] sandbox` "off" (before) and "on" (after), in the same run, '
        "alternating which goes first. Medians (min–max) of "
        f"{count} measurements each.",
        "",
        "| figure | sandbox off (before) | sandbox on (after) | target |",
        "|---|---|---|---|",
        row("app cold start to first byte, after a server restart", "cold", "s", ""),
        row("cached redeploy (same bundle, environment reused), to the task's end", "redeploy", "s", ""),
        row("scale from zero: first byte after `idle_timeout`", "zero", "s", "under 0.3 s"),
        f"| requests/s through the proxy (with the key checked) | {med('off', 'proxy'):,.0f} | "
        f"{med('on', 'proxy'):,.0f} | |",
        f"| requests/s, the app under plain uvicorn on TCP | {med('off', 'direct'):,.0f} | "
        f"{med('on', 'direct'):,.0f} | |",
        f"| proxy / direct | {ratio['off']:.0%} | {ratio['on']:.0%} | at least 85% |",
        f"| one process start, `/bin/true` (no server) | {spawn['true']:.1f} ms | {spawn['true sandboxed']:.1f} ms | |",
        f"| the app's imports as the harness loads them (no server) | {spawn['import']:.0f} ms | "
        f"{spawn['import sandboxed']:.0f} ms | |",
        "",
        f"wrk: {args.connections} keep-alive connections, {args.duration} s per round, direct and proxy "
        "alternating. The app has its Unix socket in both columns (there is no TCP port to a content process any "
        'more); "off" runs it without bubblewrap, as the server\'s user. The last two rows run outside any '
        "server, bare and sandboxed alternating, medians of 20: the sandbox's own price per process start, and how "
        "long this app's imports take on this machine, which bounds the scale-from-zero figure from below.",
    ]
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
