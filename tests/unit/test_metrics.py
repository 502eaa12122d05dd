"""metrics.py: route families that never carry a path, and the request histogram as Prometheus reads it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from packyard import metrics


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/pypi/latest/simple/", "simple"),
        ("/pypi/latest/simple/requests/", "simple"),
        ("/pypi/2026-01-02/simple/requests/", "simple"),
        ("/pypi/latest/packages/requests/" + "a" * 64 + "/requests-2.0-py3-none-any.whl", "files"),
        ("/__api__/v1/content", "api"),
        ("/__api__/token", "api"),
        ("/", "pages"),
        ("/repos/pypi/", "pages"),
        ("/connect/apps/x/logs", "pages"),
        ("/static/app.css", "pages"),
        ("/nothing", "other"),
        ("/__ping__", "other"),
        ("/a/b/c", "other"),
    ],
)
def test_route_family(path: str, family: str) -> None:
    assert metrics.route_family(path) == family


def test_request_histogram_is_cumulative_and_counts_each_request() -> None:
    requests = metrics.RequestMetrics()
    for seconds in (0.0001, 0.0007, 0.003, 100.0):
        requests.observe("simple", 200, seconds)
    requests.observe("upload", 403, 0.02)
    requests.observe("content", 0, 1.0)  # the client left before an answer
    registry = metrics.app_registry(requests, lambda: [("guid-1", 2)])
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    name = "packyard_http_request_duration_seconds"
    simple = (("family", "simple"), ("status", "2xx"))
    assert samples[(f"{name}_count", simple)] == 4
    assert samples[(f"{name}_sum", simple)] == pytest.approx(100.0038)
    assert samples[(f"{name}_bucket", (*simple[:1], ("le", "0.0005"), *simple[1:]))] == 1
    assert samples[(f"{name}_bucket", (*simple[:1], ("le", "0.001"), *simple[1:]))] == 2
    assert samples[(f"{name}_bucket", (*simple[:1], ("le", "60.0"), *simple[1:]))] == 3
    assert samples[(f"{name}_bucket", (*simple[:1], ("le", "+Inf"), *simple[1:]))] == 4
    assert samples[(f"{name}_count", (("family", "upload"), ("status", "4xx")))] == 1
    assert samples[(f"{name}_count", (("family", "content"), ("status", "none")))] == 1
    assert samples[("packyard_content_processes", (("guid", "guid-1"),))] == 2


def test_worker_figures_sum_every_workers_and_drop_a_dead_workers_processes(tmp_path: Path) -> None:
    """`--workers`: a scrape on one worker reports the others' saved figures added to its own."""
    other = metrics.WorkerFigures(tmp_path, metrics.RequestMetrics(), lambda: [("guid-1", 1)])
    other.pid, other.worker = os.getppid(), 2  # alive: this test's parent stands in for the other worker
    for seconds in (0.0001, 0.2):
        other.requests.observe("simple", 200, seconds)
    other.save()
    dead = metrics.WorkerFigures(tmp_path, metrics.RequestMetrics(), lambda: [("guid-1", 5)])
    dead.pid, dead.worker = 2**22 + 1, 3  # above the kernel's pid_max on this machine: no such process
    dead.requests.observe("upload", 201, 0.05)
    dead.save()
    mine = metrics.WorkerFigures(tmp_path, metrics.RequestMetrics(), lambda: [("guid-1", 2)])
    mine.worker = 1
    mine.requests.observe("simple", 200, 0.003)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(metrics.multiprocess_registry(mine)).decode())
        for s in family.samples
    }
    name = "packyard_http_request_duration_seconds"
    assert samples[(f"{name}_count", (("family", "simple"), ("status", "2xx")))] == 3
    assert samples[(f"{name}_sum", (("family", "simple"), ("status", "2xx")))] == pytest.approx(0.2031)
    assert samples[(f"{name}_count", (("family", "upload"), ("status", "2xx")))] == 1  # a dead worker's count stays
    assert samples[("packyard_content_processes", (("guid", "guid-1"),))] == 3  # its processes died with it
    answered = {
        dict(labels)["worker"]: v for (n, labels), v in samples.items() if n == "packyard_worker_requests_total"
    }
    assert answered == {"1": 1, "2": 2, "3": 1}
