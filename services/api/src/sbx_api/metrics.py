"""Prometheus metrics of the API.

With several worker processes (SBX_API_WORKERS > 1), `main` points PROMETHEUS_MULTIPROC_DIR at a
folder of its own before the workers start: each worker writes its samples there (prometheus
client's multiprocess mode) and any worker's `/metrics` serves the sum over every worker, so a
scrape sees the whole API whichever worker answers. One process: the usual in-memory registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by method, route template and status", ["method", "path", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by method, route template and status",
    ["method", "path", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def observe_request(method: str, path: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, path, str(status)).inc()
    HTTP_DURATION.labels(method, path, str(status)).observe(seconds)


class _AllWorkers(Collector):
    """Every worker's samples, summed; and the API's metrics no worker has observed yet as empty
    families (as one process shows them), so a scrape always lists them."""

    def collect(self) -> Iterator[Metric]:
        seen = set()
        for family in multiprocess.MultiProcessCollector(None).collect():  # type: ignore[no-untyped-call]
            seen.add(family.name)
            yield family
        for declared in (HTTP_REQUESTS, HTTP_DURATION):
            for family in declared.describe():
                if family.name not in seen:
                    yield family


def exposition() -> bytes:
    """The process metrics in Prometheus text: summed over every worker when there are several
    (process-level series such as CPU and memory are then left out: they belong to one worker)."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        registry.register(_AllWorkers())
        return generate_latest(registry)
    return generate_latest(REGISTRY)
