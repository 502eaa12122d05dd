"""Two nodes on one PostgreSQL database and one blob store (issue 16): the time from a redeploy's activation on
node A (its deploy task finished) to node B, which was serving the previous version, serving the new code. Run
with `make bench-nodes`; see bench/README.md."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from util import BENCH, ROOT, git_commit, log

sys.path.insert(0, str(ROOT))  # the test suite's cluster and publishing helpers

from tests.cluster import cluster
from tests.publishing import Publishing, manifest, setup_publishing, tarball

# Plain ASGI on uvicorn (the `echo` wheelhouse): it answers with its version.
APP = """
VERSION = {version}

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": str(VERSION).encode()}})
"""


def redeploy(a: Publishing, guid: str, version: int) -> float:
    """Upload and deploy `version` on node A; the moment its task finished (the new version active on A)."""
    archive = tarball(
        {
            "manifest.json": manifest(),
            "requirements.txt": b"websockets==17.4\n",
            "app.py": APP.format(version=version).encode(),
        }
    )
    bundle = a.api("POST", f"/v1/content/{guid}/bundles", content=archive).raise_for_status().json()["id"]
    task_id = a.api("POST", f"/v1/content/{guid}/deploy", json={"bundle_id": bundle}).json()["task_id"]
    first = 0
    while True:
        task = a.api("GET", f"/v1/tasks/{task_id}", params={"first": first, "wait": 10}).json()
        first = task["last"]
        if task["finished"]:
            if task["code"]:
                raise RuntimeError(f"deploy of version {version} failed: {task['error']}")
            return time.monotonic()


def served(pub: Publishing, guid: str) -> str:
    try:
        return httpx.get(f"{pub.server.url}/content/{guid}/", headers=pub.headers, timeout=10).text
    except httpx.HTTPError:
        return ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5, help="redeploys measured (median reported)")
    parser.add_argument("--out", type=Path, default=BENCH / "nodes-results.md")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="packyard-nodes-") as tmp, cluster(Path(tmp)) as group:
        log("two nodes up; publishing the wheels and the first version")
        a = setup_publishing(group.nodes[0], Path(tmp) / "home", wheels="echo")
        b = Publishing(group.nodes[1], a.key, a.home)
        guid = a.api("POST", "/v1/content", json={"name": "bench-nodes"}).raise_for_status().json()["guid"]
        redeploy(a, guid, 1)
        if served(b, guid) != "1":  # B starts it from the database, and serves it from now on
            raise RuntimeError(f"node B does not serve version 1: {served(b, guid)!r}")
        follow: list[float] = []
        for version in range(2, args.reps + 2):
            active = redeploy(a, guid, version)
            while served(b, guid) != str(version):
                if time.monotonic() - active > 60:
                    raise RuntimeError(f"node B did not serve version {version} within 60 s")
                time.sleep(0.01)
            follow.append(time.monotonic() - active)
            log(f"version {version}: node B serves it {follow[-1]:.2f} s after node A activated it")
    median = statistics.median(follow)
    report = (
        f"# Two nodes: a redeploy on one, served by the other ({started:%Y-%m-%d %H:%M} UTC, commit {git_commit()})\n\n"
        f"Command: `make bench-nodes BENCH_ARGS='--reps {args.reps}'`. Two `packyard run` nodes on one PostgreSQL "
        "database and one blob folder (tests/cluster.py); a plain ASGI app on uvicorn, its environment already "
        "built on both nodes after the first deploy. Timed from node A's deploy task finishing (the new version "
        "active there) to node B answering with the new version, polled every 10 ms; B was serving the previous "
        f"version each time.\n\n"
        f"| what | time |\n|---|---|\n"
        f"| redeploy on A to new code served by B, median of {len(follow)} | {median:.2f} s "
        f"(min {min(follow):.2f}, max {max(follow):.2f}) |\n\n"
        "Where it goes: up to 0.5 s until B's change-log follower reads the `content-activate` event (it reads "
        "every 0.5 s), then B's own switch: extract the bundle from the blob store, find the environment in its "
        "cache, start a process and wait for it to answer, then route to it while the old one drains.\n"
    )
    args.out.write_text(report)
    log(f"median {median:.2f} s; written to {args.out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
