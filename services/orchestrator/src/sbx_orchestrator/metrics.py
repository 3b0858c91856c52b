"""Prometheus metrics of the orchestrator (served on its ops port at /metrics).

Labels are bounded: `verb` has five values, `outcome` a handful, `operation` one per Docker call
the orchestrator makes; no sandbox or user id ever becomes a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

COMMAND_DURATION = Histogram(
    "orchestrator_command_duration_seconds",
    "Time from taking up a command to settling it, per verb and outcome.",
    ["verb", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
DOCKER_ERRORS = Counter(
    "orchestrator_docker_errors_total",
    "Docker API calls that failed, per operation.",
    ["operation"],
)
EXEC_DURATION = Histogram(
    "orchestrator_exec_duration_seconds",
    "Exec requests from receipt to reply, per outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120),
)
EVENTS_PUBLISHED = Counter(
    "orchestrator_events_published_total",
    "Sandbox events published to SBX_EVT, per status.",
    ["status"],
)
DEAD_LETTERS = Counter(
    "orchestrator_dead_letters_total",
    "Commands given up after their last delivery and sent to SBX_DLQ, per verb.",
    ["verb"],
)
