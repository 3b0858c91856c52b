"""Prometheus metrics of the API. Business gauges are read from PostgreSQL at scrape time."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
