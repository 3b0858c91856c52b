"""The hosts' registry: each host's orchestrator puts a heartbeat into the KV bucket `sbx_hosts`
(key = host id) every few seconds; the API places sandboxes on hosts whose heartbeat is fresh,
the reaper gives up the sandboxes of a host whose heartbeat is older than the grace, and
`sbx-admin hosts list` shows them (docs/scale-out.md, "Hosts and placement").

Freshness is judged by the heartbeat's own time (the host's clock): hosts and the services that
read them must keep their clocks in sync (NTP), as they already must for TTLs.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from pydantic import Field, ValidationError

from sbx_common import subjects
from sbx_common.messages import Message
from sbx_common.timeutil import utcnow

logger = logging.getLogger(__name__)

# How often a host's orchestrator puts its heartbeat.
HEARTBEAT_SECONDS = 3.0
# A heartbeat older than this is not fresh: no new sandbox is placed on its host. Several missed
# heartbeats, well under the grace after which the host's sandboxes are given up.
FRESH_SECONDS = 10.0


class HostHeartbeat(Message):
    """One host as it last announced itself."""

    host_id: str
    # What the host offers to sandboxes (the engine's CPUs and memory unless the settings say
    # otherwise): placement keeps the sum of its sandboxes' limits within these.
    cpus: float
    memory_mib: int
    # What is placed on it now, as the host counts it when it beats (sandboxes not destroyed or
    # expired, and warm pool slots): for operators and dashboards. Placement counts the same in
    # its own transaction instead, so concurrent creates never trust a figure seconds old.
    sandboxes: int = 0
    cpus_allocated: float = 0.0
    memory_mib_allocated: int = 0
    runtimes: list[str] = Field(default_factory=list)  # the users' names (`runc`, `gvisor`)
    labels: dict[str, str] = Field(default_factory=dict)
    engine_ok: bool
    heartbeat_at: datetime = Field(default_factory=utcnow)

    def age(self, now: datetime | None = None) -> float:
        return ((now or utcnow()) - self.heartbeat_at) / timedelta(seconds=1)

    def fresh(self, now: datetime | None = None) -> bool:
        return self.engine_ok and self.age(now) <= FRESH_SECONDS


# How long one read of the bucket may wait for its next entry.
READ_WAIT_SECONDS = 2.0


async def read_hosts(js: JetStreamContext) -> dict[str, HostHeartbeat]:
    """Every host's latest heartbeat (an empty dict when none announced itself yet). Raises
    `nats.errors.Error` or `TimeoutError` when the bucket cannot be read."""
    kv = await js.key_value(subjects.HOSTS_BUCKET)
    watcher = await kv.watchall(ignore_deletes=True)
    found: dict[str, HostHeartbeat] = {}
    try:
        while True:
            entry = await watcher.updates(timeout=READ_WAIT_SECONDS)  # type: ignore[no-untyped-call]
            if entry is None:  # the watcher's end of the initial values
                break
            if entry.value is None:
                continue
            try:
                found[entry.key] = HostHeartbeat.model_validate_json(entry.value)
            except ValidationError:
                logger.warning("unreadable host heartbeat", extra={"hostId": entry.key})
    finally:
        # A consumer that cannot be deleted goes away by itself (ordered, ephemeral).
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await watcher.stop()  # type: ignore[no-untyped-call]
    return found
