"""Prometheus metrics of the webhooks service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "sbx_webhook_attempts_total",
    "Delivery attempts, by outcome (delivered, http_error, network_error, refused_target)",
    ["outcome"],
)
DELIVERIES = Counter(
    "sbx_webhook_deliveries_total", "Deliveries settled, by final status (delivered, failed)", ["status"]
)
PRUNED = Counter(
    "sbx_webhook_deliveries_pruned_total",
    "Settled deliveries (with their attempts) deleted by the retention",
)
RECORDED = Counter("sbx_webhook_deliveries_recorded_total", "Deliveries recorded from events")
ATTEMPT_SECONDS = Histogram(
    "sbx_webhook_attempt_seconds",
    "Duration of one delivery attempt",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
