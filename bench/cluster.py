"""Issue 16's figures: simple pages and uploads through HAProxy with one node and with two, and the S3 store (moto's
server) against the local store for the upload rate and a `uv pip install` of the 150-distribution tree.

Each configuration is a fresh PostgreSQL database with `tests/cluster.py`'s nodes and `tests/balancer.py`'s HAProxy
(the configuration docs/SCALING.md quotes), one run each. Nothing is pinned: the nodes, HAProxy, PostgreSQL, moto
and the clients share the machine's cores, which is the point to keep in mind when reading the figures
(`bench/cluster-results.md` says what they can and cannot show).

    .venv-test/bin/python bench/cluster.py [--projects 500] [--seconds 10] [--out bench/cluster-results.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from corpus import TREE_SIZE, Corpus, ensure_corpus, tree_name
from installs import install_once
from servers import Target
from uploads import bulk_upload
from util import ROOT, Service, git_commit, log, spawn, tool, wait_http
from wrk import measure

sys.path.insert(0, str(ROOT))  # the test suite's cluster, balancer and moto helpers, as the fault tests run them
from tests.balancer import Balancer, haproxy
from tests.cluster import cluster
from tests.conftest import Server
from tests.s3 import MotoS3

CONCURRENCY = 8  # upload connections: CI jobs publishing at once


READING = """
## What two cores can and cannot show

- Every process of a run shares the machine's two cores: the nodes, HAProxy, PostgreSQL, moto, wrk, the upload
  client and uv, and whatever else runs there (the load averages above). A second node adds no CPU, it splits the
  same two cores with the first, so two nodes against one cannot show scaling out. What the rows can show: a second
  node following the change log costs the pages nothing visible (every node answers them from memory), and
  uploads stay correct and about as fast while two nodes write to one database, where they serialize anyway.
- What HAProxy costs: one node behind it against the same node without it, an extra hop per request on the same
  cores.
- Uploads are bound by PostgreSQL's transaction and the fsyncs of the shared blob store as much as by a node's CPU;
  more upload throughput takes a faster database and store, not more nodes.
- S3 against the local store: moto is an in-memory S3 written in Python, on the same cores, reached over loopback.
  The rows measure Packyard's S3 path (a PUT with its sha256 per upload, a GET through the node per download)
  against a local file, with a store that costs far more CPU per request than a real one and no network latency
  at all. On a real object store the network's 10-50 ms per request dominates instead; `[storage] redirect = true`
  sends installers to the store directly.
- One run each: on a shared machine, differences under about 15% are noise.
"""


@dataclass
class Row:
    setup: str
    figure: str
    value: str
    note: str = ""


def target(name: str, base: str, process: Service) -> Target:
    return Target(name, base, "/pypi/latest/simple/", process)


def node_service(node: Server) -> Service:
    return Service("packyard", node.process, node.log_path)


def balancer_service(balancer: Balancer) -> Service:
    return Service("haproxy", balancer.process, balancer.log_path)


def uploads(url: str, token: str, files: list[Path]) -> float:
    rate = bulk_upload(f"{url}/upload/pypi/local-python-src", ("__token__", token), files, CONCURRENCY)
    return rate.per_second


def pages(name: str, url: str, service: Service, corpus: Corpus, seconds: int) -> tuple[str, str]:
    result = measure(target(name, url, service), corpus.projects, "json", 16, seconds, 5, 1)
    if not result.ok:
        raise RuntimeError(f"{name}: {result.errors} wrk requests failed; not a valid figure")
    return f"{result.requests_per_second:,.0f} req/s", f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"


def tree_files(corpus: Corpus) -> list[Path]:
    return corpus.files({tree_name(i) for i in range(TREE_SIZE)})


@contextmanager
def moto_server(root: Path) -> Iterator[MotoS3]:
    """moto's S3 in a process of its own (the tests run it in theirs), so it does not share a GIL with the clients."""
    moto = MotoS3()
    service = spawn("moto", [tool("moto_server"), "-H", "127.0.0.1", "-p", str(moto.port)], root / "moto.log")
    try:
        wait_http(service, f"{moto.url}/moto-api/")
        yield moto
    finally:
        service.stop()


@contextmanager
def nodes(root: Path, count: int, storage: dict[str, str] | None = None) -> Iterator[list[Server]]:
    env = {"PACKYARD_SERVER_ACCESS_LOG": "false"}  # as bench/servers.py runs Packyard: no log line per request
    with cluster(root, count, storage={**env, **(storage or {"PACKYARD_STORAGE_PATH": str(root / "blobs")})}) as group:
        yield group.nodes


def through_haproxy(root: Path, corpus: Corpus, count: int, seconds: int) -> list[Row]:
    """Uploads of the corpus projects' files, then their pages, through HAProxy in front of `count` nodes."""
    setup = f"{count} node{'s' if count > 1 else ''} behind HAProxy"
    rows = []
    with nodes(root / f"lb{count}", count) as group, haproxy(root / f"haproxy{count}", [n.port for n in group]) as lb:
        files = corpus.files(set(corpus.projects))
        rate = uploads(lb.url, group[0].upload_token, files)
        log(f"{setup}: {len(files)} uploads at {rate:.0f} files/s")
        rows.append(Row(setup, f"uploads, {len(files)} wheels over {CONCURRENCY} connections", f"{rate:.0f} files/s"))
        time.sleep(2)  # every node has followed the change log
        value, note = pages(f"haproxy-{count}", lb.url, balancer_service(lb), corpus, seconds)
        rows.append(Row(setup, "project pages (wrk, 16 connections, JSON)", value, note))
        if count == 1:  # the same node without HAProxy: what the balancer itself costs
            value, note = pages("direct", group[0].url, node_service(group[0]), corpus, seconds)
            rows.append(Row("1 node, no balancer", "project pages (wrk, 16 connections, JSON)", value, note))
    return rows


def store(root: Path, corpus: Corpus, name: str, storage: dict[str, str] | None) -> list[Row]:
    """One node (PostgreSQL) on this store: the tree's 750 wheels uploaded, then installed with uv, cold."""
    rows = []
    with nodes(root / name, 1, storage) as (node,):
        files = tree_files(corpus)
        rate = uploads(node.url, node.upload_token, files)
        log(f"{name}: {len(files)} uploads at {rate:.0f} files/s")
        rows.append(Row(f"1 node, {name}", f"uploads, {len(files)} wheels over {CONCURRENCY} connections",
                        f"{rate:.0f} files/s"))  # fmt: skip
        bench_target = target(name, node.url, node_service(node))
        install_once(bench_target, f"cluster-{name}", -1)  # untimed: the server's first reads fill its caches
        seconds = [install_once(bench_target, f"cluster-{name}", rep) for rep in range(3)]
        log(f"{name}: uv install of the tree {', '.join(f'{s:.2f}' for s in seconds)} s")
        runs = "median of 3: " + ", ".join(f"{s:.2f}" for s in seconds)
        figure = f"`uv pip install {tree_name(0)}` (150 wheels, cold cache)"
        rows.append(Row(f"1 node, {name}", figure, f"{sorted(seconds)[1]:.2f} s", runs))
    return rows


def report(rows: list[Row], command: str, projects: int, seconds: float, load: tuple[float, float]) -> str:
    lines = [
        "# Cluster figures (issue 16)",
        "",
        f"Commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"one run each ({seconds:.0f} s in all); the machine's 1-minute load average was {load[0]:.1f} at the start",
        f"and {load[1]:.1f} at the end (other work on the same 2 cores counts in it). Command:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Corpus: {projects} projects x 5 versions of a tiny wheel, and the 150-project tree (`bench/corpus.py`).",
        "Every configuration is a fresh PostgreSQL database; the nodes share a blob folder unless the row says S3.",
        "",
        "| Setup | Figure | Value | Note |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.setup} | {r.figure} | {r.value} | {r.note} |" for r in rows]
    return "\n".join(lines) + "\n" + READING


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--out", type=Path, default=None, help="write the report here (default: print it)")
    args = parser.parse_args()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    corpus = ensure_corpus(args.projects)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="packyard-cluster-bench-") as folder:
        root = Path(folder)
        rows += through_haproxy(root, corpus, 1, args.seconds)
        rows += through_haproxy(root, corpus, 2, args.seconds)
        rows += store(root, corpus, "local store", None)
        with moto_server(root) as moto:
            rows += store(root, corpus, "S3 (moto server)", moto.env(moto.new_bucket()))
    command = "make bench-cluster" + (f' BENCH_ARGS="--projects {args.projects}"' if args.projects != 500 else "")
    text = report(rows, command, args.projects, time.monotonic() - started, (load_before, os.getloadavg()[0]))
    if args.out:
        args.out.write_text(text)
        log(f"wrote {args.out}")
    print(text)


if __name__ == "__main__":
    main()
