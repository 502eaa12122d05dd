"""Prometheus metrics: what `/metrics` reports, counted where it happens.

Most counters live in prometheus_client's default registry, one set per process, so any domain can count
without being handed an object. The two on the simple-page path (requests, page-cache lookups) are plain
numbers bumped on the event loop and turned into metric families at scrape time, because prometheus_client
takes a lock per increment. Labels are bounded on purpose: requests by route family and status class, never
by path; processes by content GUID, which the number of content items bounds. The gauge of processes is
read from the supervisor at scrape time (`ContentProcesses`), so running content costs nothing between scrapes.

Several worker processes (`packyard run --workers N`, not built yet) would each hold their own counts, and a
scrape reaches one worker. The answer then is prometheus_client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR`
set before this module is imported, each worker writing its Counter and Histogram values to files there,
`/metrics` collecting them with a `MultiProcessCollector`, and a worker's files removed with `mark_process_dead`
when it exits. The scrape-time collectors here do not take part in that: the request histogram and the page
tallies would go back to prometheus_client objects (whose multiprocess values are mmapped files, without the
lock), and processes per content would become a Gauge with `multiprocess_mode="livesum"` set by the supervisor.
Each node of a cluster is scraped on its own.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
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
    "Mirrored files requested while not stored: started upstream, or joined a running download.",
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


class _Tallies(Collector):
    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "packyard_page_cache_lookups",
            "Simple pages asked of the in-memory page cache: hit, or miss (read from the database).",
            labels=["result"],
        )
        lookups.add_metric(["hit"], PAGE_HIT.value)
        lookups.add_metric(["miss"], PAGE_MISS.value)
        yield lookups


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
        histogram = HistogramMetricFamily(
            self.NAME, "HTTP requests by route family and status class, and the time each took.", labels=FAMILY_LABELS
        )
        for (family, status), series in sorted(self._series.items()):
            cumulative = list(accumulate(series[:-1]))
            buckets = [(floatToGoString(le), n) for le, n in zip(LATENCY_BUCKETS, cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            histogram.add_metric([family, f"{status}xx" if status else "none"], buckets, series[-1])
        yield histogram


class ContentProcesses(Collector):
    """`packyard_content_processes{guid}`: the running processes of each content item, read at scrape time."""

    def __init__(self, running: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self.running = running

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "packyard_content_processes",
            "Running processes of each content item (its pool and draft).",
            labels=["guid"],
        )
        for guid, count in self.running():
            gauge.add_metric([guid], count)
        yield gauge


def app_registry(requests: RequestMetrics, running: Callable[[], Iterable[tuple[str, int]]]) -> CollectorRegistry:
    """The figures of one running app (its requests, its supervisor's processes), beside the process-wide default
    registry."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(requests)
    registry.register(ContentProcesses(running))
    return registry
