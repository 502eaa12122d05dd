"""Packyard benchmark: project-page throughput, uv install time and twine upload rate against nginx (static
files), pypiserver and devpi-server, on a generated corpus. See bench/README.md; run with `make bench`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import installs
import mirror
import wrk
from corpus import Corpus, ensure_corpus
from report import Results, markdown
from servers import Target, start_devpi, start_nginx, start_packyard, start_pypiserver
from uploads import twine_upload, twine_wheels
from util import BENCH, OtherLoad, log

SERVERS = ("nginx", "packyard", "pypiserver", "devpi")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--projects", default="5000", help="corpus sizes, comma-separated, e.g. 500,5000,50000")
    p.add_argument("--servers", default=",".join(SERVERS), help="which servers to measure")
    p.add_argument("--skip-devpi", action="store_true", help="leave devpi out (its first load takes minutes)")
    p.add_argument("--no-snapshot", action="store_true", help="skip the dated-snapshot page run for Packyard")
    p.add_argument("--accept", default="json,pip,html", help="Accept variants for Packyard (others get the first)")
    p.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    p.add_argument("--duration", type=int, default=15, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=int, default=5, help="seconds per warm-up wrk run")
    p.add_argument("--install-reps", type=int, default=5, help="timed uv installs per server (median reported)")
    p.add_argument("--install-budget", type=float, default=300, help="seconds of installs per server, then stop")
    p.add_argument("--twine-files", type=int, default=300, help="wheels per twine upload")
    p.add_argument("--twine-reps", type=int, default=5, help="twine invocations per server (median reported)")
    p.add_argument("--no-pages", action="store_true", help="skip the page throughput runs")
    p.add_argument("--no-install", action="store_true", help="skip the uv install timings")
    p.add_argument("--no-twine", action="store_true", help="skip the twine upload timings")
    p.add_argument(
        "--mirror",
        nargs="?",
        const=",".join(mirror.MIRRORS),
        default="",
        help="also time uv installs of a 30-package tree through caching mirrors (alone: direct,packyard,devpi)",
    )
    p.add_argument("--mirror-reps", type=int, default=3, help="cold and cached installs per mirror")
    p.add_argument("--load-concurrency", type=int, default=4, help="connections used to load Packyard")
    p.add_argument("--staged-load-above", type=int, default=5000, help="load larger corpora into Packyard staged")
    p.add_argument(
        "--fresh",
        nargs="?",
        const="packyard,devpi",
        default="",
        help="reload these servers' kept data from scratch (alone: both packyard and devpi)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the shuffled URL order")
    p.add_argument("--out", type=Path, default=BENCH / "results.md", help="markdown report")
    p.add_argument("--append", action="store_true", help="append to the report instead of replacing it")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.projects.split(",") if s.strip()]
    args.server_list = [s for s in args.servers.split(",") if s and not (s == "devpi" and args.skip_devpi)]
    unknown = set(args.server_list) - set(SERVERS)
    if unknown:
        p.error(f"unknown servers: {', '.join(sorted(unknown))}; choose from {', '.join(SERVERS)}")
    args.fresh_list = [s for s in args.fresh.split(",") if s]
    args.mirror_list = [s for s in args.mirror.split(",") if s]
    if set(args.mirror_list) - set(mirror.MIRRORS):
        p.error(f"--mirror takes a list of {', '.join(mirror.MIRRORS)}")
    args.variants = [v for v in args.accept.split(",") if v]
    if not args.variants or set(args.variants) - set(wrk.ACCEPT):
        p.error(f"--accept takes a list of {', '.join(wrk.ACCEPT)}")
    return args


def starter(name: str, args: argparse.Namespace) -> Callable[[Corpus], Target]:
    if name == "packyard":
        staged = args.staged_load_above
        return lambda c: start_packyard(c, name in args.fresh_list, args.load_concurrency, c.size > staged)
    if name == "devpi":
        return lambda c: start_devpi(c, name in args.fresh_list)
    return {"nginx": start_nginx, "pypiserver": start_pypiserver}[name]


def measure_server(target: Target, corpus: Corpus, args: argparse.Namespace, results: Results, tag: str) -> None:
    results.record_load(target, corpus.size)
    if not args.no_pages:
        variants = args.variants if target.name == "packyard" else args.variants[:1]
        for variant in variants:
            page = wrk.measure(
                target, corpus.projects, variant, args.connections, args.duration, args.warmup, args.seed
            )
            results.pages.append(page)
        if target.name == "packyard" and not args.no_snapshot:
            # A dated snapshot is a view rendered from history on first request, then cached like `latest`.
            today = datetime.now(UTC).date().isoformat()
            dated = dataclasses.replace(target, name=f"packyard /pypi/{today}/", simple_prefix=f"/pypi/{today}/simple/")
            results.pages.append(
                wrk.measure(dated, corpus.projects, "json", args.connections, args.duration, args.warmup, args.seed)
            )
    if not args.no_install:
        results.installs.append(installs.measure(target, corpus.size, args.install_reps, args.install_budget))
    if not args.no_twine and target.credentials and target.upload_url:
        # This VM's speed drifts by a third between identical runs: report the median of several invocations.
        rates = []
        meter = OtherLoad(target.service.process.pid)
        for rep in range(args.twine_reps):
            files = twine_wheels(args.twine_files, f"{tag}-{corpus.size}-{rep}")
            rate = twine_upload(target.upload_url, *target.credentials, files)
            log(f"{target.name} twine @{corpus.size}: {rate.per_second:.0f}/s")
            rates.append(rate)
        results.twine.append((target.name, corpus.size, rates, meter.cores()))


def describe_command(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL"):
        return "make bench" + (f" BENCH_ARGS={shlex.quote(' '.join(argv))}" if argv else "")
    return shlex.join([".venv-test/bin/python", "bench/run.py", *argv])


def preflight(args: argparse.Namespace) -> None:
    """Stop before any work when a tool is missing, saying how to get it."""
    needed = ["taskset"] + (["wrk"] if args.server_list and not args.no_pages else [])
    needed += ["nginx"] if "nginx" in args.server_list or args.mirror_list else []
    missing = [t for t in needed if not (shutil.which(t) or Path("/usr/sbin", t).exists())]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: `apt-get install -y wrk nginx util-linux` (or `make bench`).")
    if (os.cpu_count() or 1) < 2:
        log("only one CPU: server and load generator share it, so figures are not comparable to 2-core runs")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    preflight(args)
    command = describe_command(argv)
    results = Results(command, args.connections, args.duration)
    tag = time.strftime("%m%d%H%M%S")
    for size in args.sizes if args.server_list else []:
        corpus = ensure_corpus(size)
        for name in args.server_list:
            log(f"== {name} @ {size} projects")
            target = starter(name, args)(corpus)
            try:
                measure_server(target, corpus, args, results, tag)
            finally:
                target.stop()
    if args.mirror_list:
        results.mirror = mirror.measure(args.mirror_list, args.mirror_reps)
    report = markdown(results)
    print("\n" + report)
    previous = args.out.read_text() + "\n" if args.append and args.out.exists() else ""
    args.out.write_text(previous + report)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
