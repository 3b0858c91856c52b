"""Prometheus metrics of the reaper."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SANDBOXES_EXPIRED = Counter(
    "reaper_sandboxes_expired_total", "Destroy commands published because a sandbox's TTL ran out."
)
ORPHANS_REAPED = Counter(
    "reaper_orphans_reaped_total", "Containers of this instance removed because no live sandbox owns them."
)
COMMANDS_REPAIRED = Counter(
    "reaper_commands_repaired_total",
    "Repairs of sandboxes whose command was not taken up or that are stuck in a transitional status.",
    ["action"],  # republish | fail
)
SWEEP_SECONDS = Histogram(
    "reaper_sweep_seconds",
    "Duration of one database and Docker sweep.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TTL_TIMERS = Gauge("reaper_ttl_timers", "TTL timers currently scheduled in this process.")
SANDBOXES_LOST = Counter(
    "reaper_sandboxes_lost_total", "Sandboxes given up because their host stopped heartbeating."
)
