"""Prometheus metrics: what `/metrics` reports, counted where it happens.

Most counters live in prometheus_client's default registry, one set per process, so any domain can count
without being handed an object. The two on the simple-page path (requests, page-cache lookups) are plain
numbers bumped on the event loop and turned into metric families at scrape time, because prometheus_client
takes a lock per increment. Labels are bounded on purpose: requests by route family and status class, never
by path; processes by content GUID, which the number of content items bounds. The gauge of processes is
read from the supervisor at scrape time (`ContentProcesses`), so running content costs nothing between scrapes.

Several worker processes (`packyard run --workers N`) each hold their own counts, and a scrape reaches one worker,
so there `/metrics` reports the sum over the workers. The prometheus_client metrics use its multiprocess mode:
`PROMETHEUS_MULTIPROC_DIR` is set by the parent before it spawns the workers, so each worker's Counter and Histogram
values are mmapped files there, summed by a `MultiProcessCollector`. The plain numbers (requests, page lookups)
and the processes per content stay plain numbers on the hot path: each worker writes them to a small JSON file in
the same folder every half second (`WorkerFigures.save`, from the change-log loop), and the scrape sums those of
every worker, its own read live. A worker killed with -9 loses at most its last half second of requests; the
processes it ran count no longer once it is dead; what it counted before stays in the sums, as a counter must.
Each node of a cluster is scraped on its own.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Route families: a request's label. `upload` and `content` are chosen by app.py's dispatch, the rest by path.
SIMPLE, FILES, UPLOAD, CONTENT, API, PAGES, OTHER = "simple", "files", "upload", "content", "api", "pages", "other"
FAMILIES = (SIMPLE, FILES, UPLOAD, CONTENT, API, PAGES, OTHER)
FAMILY_LABELS = ["family", "status"]  # status: 2xx ... 5xx, or none when the client left before any answer
# The first path segment of the web pages (web/routes.py's areas).
_PAGE_ROOTS = frozenset({"", "repos", "connect", "admin", "login", "logout", "profile", "static"})
# The hot path answers in well under a millisecond; deploys and app requests take seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BUILD_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

UPLOADS = Counter("packyard_uploads", "Package uploads accepted: a new file, or an identical re-upload.", ["outcome"])
UPLOAD_BYTES = Counter("packyard_upload_bytes", "Bytes of package files accepted by uploads.")
UPLOAD_REJECTS = Counter("packyard_upload_rejects", "Package uploads refused, by HTTP status.", ["status"])
MIRROR_PAGES = Counter(
    "packyard_mirror_page_lookups",
    "Mirrored names checked: fresh (no upstream request), revalidated (a conditional GET) or fetched upstream.",
    ["result"],
)
MIRROR_FILES = Counter(
    "packyard_mirror_file_downloads",
    "Mirrored files requested while not stored: started upstream, joined a running download, or downloaded by "
    "another node or worker (elsewhere).",
    ["result"],
)
ENV_BUILDS = Counter(
    "packyard_environment_prepares", "Content environments asked for: reused, built, or failed to build.", ["result"]
)
ENV_BUILD_SECONDS = Histogram(
    "packyard_environment_build_duration_seconds", "Time to build a content environment.", buckets=_BUILD_BUCKETS
)
DEPLOYS = Counter("packyard_deploys", "Deploy tasks, by stage: started, succeeded, failed.", ["result"])


class Tally:
    """A count bumped on the event loop's hot path: a plain int. prometheus_client's Counter takes a lock on every
    `inc`, which cost the simple-page path measurably; a lost increment from a thread costs a metric nothing."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


PAGE_HIT = Tally()
PAGE_MISS = Tally()


def _page_lookups(hit: float, miss: float) -> Metric:
    lookups = CounterMetricFamily(
        "packyard_page_cache_lookups",
        "Simple pages asked of the in-memory page cache: hit, or miss (read from the database).",
        labels=["result"],
    )
    lookups.add_metric(["hit"], hit)
    lookups.add_metric(["miss"], miss)
    return lookups


class _Tallies(Collector):
    def collect(self) -> Iterator[Metric]:
        yield _page_lookups(PAGE_HIT.value, PAGE_MISS.value)


REGISTRY.register(_Tallies())


def route_family(path: str) -> str:
    """The family of a path the hot path or FastAPI answers (uploads and content are told apart before)."""
    if path.startswith("/__api__/"):
        return API
    parts = path.split("/", 4)
    if len(parts) >= 4:  # ['', repo, 'latest' or a date, 'simple' or 'packages', ...]
        if parts[3] == "simple":
            return SIMPLE
        if parts[3] == "packages":
            return FILES
    return PAGES if parts[1] in _PAGE_ROOTS else OTHER


class RequestMetrics(Collector):
    """`packyard_http_request_duration_seconds{family,status}`: each HTTP request from its start to the end of its
    answer (its `_count` is the number of requests). Kept as plain lists updated on the event loop, the only
    place requests are observed, and turned into a histogram at scrape time: a prometheus_client Histogram
    takes a lock per bucket and per sum, which cost the hot path about a tenth of its requests/s."""

    NAME = "packyard_http_request_duration_seconds"

    def __init__(self) -> None:
        # (family, status // 100) -> the count in each bucket (not cumulative), then +Inf's, then the sum
        self._series: dict[tuple[str, int], list[float]] = {}

    def observe(self, family: str, status: int, seconds: float) -> None:
        series = self._series.get((family, status // 100))
        if series is None:
            series = self._series[(family, status // 100)] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
        series[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        yield _request_histogram(self._series)

    @property
    def series(self) -> dict[tuple[str, int], list[float]]:
        return self._series


def _request_histogram(series: dict[tuple[str, int], list[float]]) -> Metric:
    histogram = HistogramMetricFamily(
        RequestMetrics.NAME,
        "HTTP requests by route family and status class, and the time each took.",
        labels=FAMILY_LABELS,
    )
    for (family, status), counts in sorted(series.items()):
        cumulative = list(accumulate(counts[:-1]))
        buckets = [(floatToGoString(le), n) for le, n in zip(LATENCY_BUCKETS, cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        histogram.add_metric([family, f"{status}xx" if status else "none"], buckets, counts[-1])
    return histogram


class ContentProcesses(Collector):
    """`packyard_content_processes{guid}`: the running processes of each content item, read at scrape time."""

    def __init__(self, running: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self.running = running

    def collect(self) -> Iterator[Metric]:
        yield _content_processes(self.running())


def _content_processes(running: Iterable[tuple[str, int]]) -> Metric:
    gauge = GaugeMetricFamily(
        "packyard_content_processes", "Running processes of each content item (its pool and draft).", labels=["guid"]
    )
    for guid, count in running:
        gauge.add_metric([guid], count)
    return gauge


class WorkerFigures(Collector):
    """`--workers`: this worker's plain-number figures, saved to the multiprocess folder for the others, and at
    scrape time the sum of every worker's (see the module docstring), plus the requests each worker answered."""

    def __init__(
        self, folder: Path, requests: RequestMetrics, running: Callable[[], Iterable[tuple[str, int]]]
    ) -> None:
        self.folder = folder
        self.requests = requests
        self.running = running
        self.pid = os.getpid()
        self.worker = 0  # set once the worker has its slot

    def mine(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "worker": self.worker,
            "requests": [[family, status, counts] for (family, status), counts in list(self.requests.series.items())],
            "pages": [PAGE_HIT.value, PAGE_MISS.value],
            "processes": [[guid, count] for guid, count in self.running()],
        }

    def save(self) -> None:
        """Write this worker's figures whole (a rename), for the scrapes other workers answer."""
        path = self.folder / f"figures-{self.pid}.json"
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(self.mine()))
        staged.replace(path)

    def _everyone(self) -> Iterator[dict[str, Any]]:
        yield self.mine()
        for path in self.folder.glob("figures-*.json"):
            if path.name != f"figures-{self.pid}.json":
                try:
                    yield json.loads(path.read_text())
                except (OSError, ValueError):  # a worker's file half-read is impossible (rename); gone is not
                    continue

    def collect(self) -> Iterator[Metric]:
        series: dict[tuple[str, int], list[float]] = {}
        hit = miss = 0
        processes: dict[str, int] = {}
        answered = CounterMetricFamily(
            "packyard_worker_requests", "HTTP requests each worker process answered.", labels=["worker", "pid"]
        )
        for figures in self._everyone():
            total = 0
            for family, status, counts in figures["requests"]:
                summed = series.setdefault((family, status), [0] * len(counts))
                series[(family, status)] = [a + b for a, b in zip(summed, counts, strict=True)]
                total += sum(counts[:-1])
            answered.add_metric([str(figures["worker"]), str(figures["pid"])], total)
            hit, miss = hit + figures["pages"][0], miss + figures["pages"][1]
            if figures["pid"] == self.pid or _alive(figures["pid"]):  # a dead worker's processes died with it
                for guid, count in figures["processes"]:
                    processes[guid] = processes.get(guid, 0) + count
        yield _request_histogram(series)
        yield _page_lookups(hit, miss)
        yield _content_processes(sorted(processes.items()))
        yield answered


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def multiprocess_folder() -> Path | None:
    """The folder of `--workers`' metrics files (set by the parent before it spawned this worker), else None."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) if folder else None


def multiprocess_registry(figures: WorkerFigures) -> CollectorRegistry:
    """Every worker's figures summed: prometheus_client's files, and the plain numbers' (`WorkerFigures`)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(figures.folder))
    registry.register(figures)
    return registry


def app_registry(requests: RequestMetrics, running: Callable[[], Iterable[tuple[str, int]]]) -> CollectorRegistry:
    """The figures of one running app (its requests, its supervisor's processes), beside the process-wide default
    registry."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(requests)
    registry.register(ContentProcesses(running))
    return registry
