"""Prometheus metrics: what `/metrics` reports, counted where it happens.

The counters live in prometheus_client's default registry, one set per process, so any domain can count
without being handed an object. Labels are bounded on purpose: requests by route family and status class,
never by path; processes by content GUID, which the number of content items bounds. The gauge of processes
is read from the supervisor at scrape time (`ContentProcesses`), so running content costs nothing between
scrapes.

Several worker processes (`packyard run --workers N`, not built yet) would each hold their own counts. The
answer then is prometheus_client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` set before this module is
imported, each worker writing its values to files there, `/metrics` collecting them with a
`MultiProcessCollector`, gauges given a `multiprocess_mode` (`livesum` for processes per content), and a
worker's files removed with `mark_process_dead` when it exits. Each node of a cluster is scraped on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Route families: a request's label. `upload` and `content` are chosen by app.py's dispatch, the rest by path.
SIMPLE, FILES, UPLOAD, CONTENT, API, PAGES, OTHER = "simple", "files", "upload", "content", "api", "pages", "other"
FAMILIES = (SIMPLE, FILES, UPLOAD, CONTENT, API, PAGES, OTHER)
# The first path segment of the web pages (web/routes.py's areas).
_PAGE_ROOTS = frozenset({"", "repos", "connect", "admin", "login", "logout", "profile", "static"})
# The hot path answers in well under a millisecond; deploys and app requests take seconds.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BUILD_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

REQUEST_SECONDS = Histogram(
    "packyard_http_request_duration_seconds",
    "HTTP requests by route family and status class, and how long each took to answer in full (its _count is "
    "the number of requests).",
    ["family", "status"],
    buckets=_LATENCY_BUCKETS,
)
UPLOADS = Counter("packyard_uploads", "Package uploads accepted: a new file, or an identical re-upload.", ["outcome"])
UPLOAD_BYTES = Counter("packyard_upload_bytes", "Bytes of package files accepted by uploads.")
UPLOAD_REJECTS = Counter("packyard_upload_rejects", "Package uploads refused, by HTTP status.", ["status"])
PAGE_CACHE = Counter(
    "packyard_page_cache_lookups",
    "Simple pages asked of the in-memory page cache: hit, or miss (read from the database).",
    ["result"],
)
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

PAGE_HIT = PAGE_CACHE.labels("hit")
PAGE_MISS = PAGE_CACHE.labels("miss")


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


class RequestMetrics:
    """Times each HTTP request from its start to the end of its answer, and counts it by family and status."""

    def __init__(self) -> None:
        # The labelled children, looked up once: `labels()` takes a lock and builds a tuple on every call.
        self._children: dict[tuple[str, int], Histogram] = {}

    def observe(self, family: str, status: int, seconds: float) -> None:
        child = self._children.get((family, status // 100))
        if child is None:
            label = f"{status // 100}xx" if status else "none"  # none: the client left before any answer
            child = self._children[(family, status // 100)] = REQUEST_SECONDS.labels(family, label)
        child.observe(seconds)

    async def measure(self, family: str, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await app(scope, receive, sending)
        except BaseException:
            self.observe(family, status or 500, time.perf_counter() - started)  # uvicorn answers 500
            raise
        self.observe(family, status, time.perf_counter() - started)


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


def app_registry(running: Callable[[], Iterable[tuple[str, int]]]) -> CollectorRegistry:
    """The figures of one running app (its supervisor's processes), beside the process-wide default registry."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ContentProcesses(running))
    return registry
