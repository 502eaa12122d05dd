"""The price of the proxy's access check by browser session: requests per second through `/content/<guid>/` for a
viewer sending her browser's session cookie, against the same viewer sending an API key, in one run. The FastAPI
test app is shared (`acl`) with a group she is in, so both walk the whole check. Run with `make bench-access`;
see bench/README.md."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
from util import BENCH, VENV_BIN, WORK, git_commit, log
from wrk import rate

from apps import Server, bundle, deploy, first_byte, wheels

DATA = WORK / "access"
PASSWORD = "correct horse battery"


def viewer(server: Server) -> tuple[str, str]:
    """Viewer `vera`: her API key, and the session cookie of a sign-in through the real login form."""
    env = {**os.environ, "PACKYARD_DATA_DIR": str(server.data)}
    subprocess.run([str(VENV_BIN / "packyard"), "user", "create", "vera", "--role", "viewer", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True)  # fmt: skip
    key = server.cli("key", "create", "--user", "vera", "-q")
    return key, sign_in(server)


def sign_in(server: Server) -> str:
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        form = browser.get("/login").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        browser.post("/login", data={"username": "vera", "password": PASSWORD, "csrf_token": token})
        return browser.cookies["packyard_session"]


def share_with_group(http: httpx.Client, guid: str) -> None:
    """Content for `acl` only, shared with the group `analysts`, whose member vera is."""
    group = http.post("/__api__/v1/groups", json={"name": "analysts"}).raise_for_status().json()
    vera = http.get("/__api__/v1/users", params={"prefix": "vera"}).raise_for_status().json()["results"][0]
    http.post(f"/__api__/v1/groups/{group['guid']}/members", json={"user_guid": vera["guid"]}).raise_for_status()
    body = {"principal_guid": group["guid"], "principal_type": "group", "role": "viewer"}
    http.post(f"/__api__/v1/content/{guid}/permissions", json=body).raise_for_status()
    http.patch(f"/__api__/v1/content/{guid}", json={"access_type": "acl", "max_processes": 1}).raise_for_status()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5, help="wrk rounds per credential")
    parser.add_argument("--connections", type=int, default=8, help="wrk's keep-alive connections")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    parser.add_argument("--out", type=Path, default=BENCH / "access-results.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("`wrk` is not installed; `make bench-access` installs it (apt-get install wrk).")
    server = Server(DATA)
    rounds: dict[str, list[tuple[float, float]]] = {"key": [], "session": []}
    try:
        admin = server.load(wheels())
        key, session = viewer(server)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Key {admin}"}, timeout=300) as http:
            log("deploying the FastAPI app")
            guid = deploy(http, "fastapi-app", bundle("python-fastapi", "fastapi-app", "app"))
            share_with_group(http, guid)
            first_byte(http, guid)
        url = f"{server.url}/content/{guid}/"
        headers = {"key": f"Authorization: Key {key}", "session": f"Cookie: packyard_session={session}"}
        for name, header in headers.items():  # each must be let in, or wrk counts every answer as an error
            name_, value = header.split(": ", 1)
            answer = httpx.get(url, headers={name_: value}, timeout=60)
            if answer.status_code != 200:
                raise RuntimeError(f"vera's {name} was refused: {answer.status_code} {answer.text[:300]}")
        rate(url, headers["key"], args.connections, 2)  # warm-up
        for rep in range(args.reps):
            for name in ("key", "session") if rep % 2 == 0 else ("session", "key"):
                rounds[name].append(rate(url, headers[name], args.connections, args.duration))
                log(f"rep {rep + 1}: {name} {rounds[name][-1][0]:,.0f} req/s, p50 {rounds[name][-1][1]:.2f} ms")
    finally:
        server.stop()

    rps = {name: statistics.median(r for r, _ in rounds[name]) for name in rounds}
    p50 = {name: statistics.median(p for _, p in rounds[name]) for name in rounds}
    report = [
        f"# The proxy's access check by session ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()})",
        "",
        f"Command: `make bench-access BENCH_ARGS='--reps {args.reps} --connections {args.connections} --duration "
        f"{args.duration}'`, on a machine with {os.cpu_count()} cores ({socket.gethostname()}). The FastAPI test app"
        " (`tests/apps/fastapi-app`), one process, `acl`, shared with a group whose member, the viewer `vera`, sends"
        " either her API key or her browser's session cookie; the server, the app and wrk share the cores.",
        "",
        "| figure | result | target (issue 14) |",
        "|---|---|---|",
        f"| requests/s with `Authorization: Key` | {rps['key']:,.0f} (p50 {p50['key']:.2f} ms) | |",
        f"| requests/s with the `packyard_session` cookie | {rps['session']:,.0f} (p50 {p50['session']:.2f} ms) | |",
        f"| session / key | {rps['session'] / rps['key']:.0%} | at least 90% |",
        "",
        f"Requests/s and p50 are medians of {args.reps} wrk rounds of {args.duration} s each, {args.connections}"
        " keep-alive connections, key and session alternating.",
    ]
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
