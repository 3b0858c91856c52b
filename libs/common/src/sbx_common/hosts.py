"""The hosts' registry: each host's orchestrator puts a heartbeat into the KV bucket `sbx_hosts`
(key = host id) every few seconds; the API places sandboxes on hosts whose heartbeat is fresh,
the reaper gives up the sandboxes of a host whose heartbeat is older than the grace, and
`sbx-admin hosts list` shows them (docs/scale-out.md, "Hosts and placement").

Freshness is judged by the heartbeat's own time (the host's clock): hosts and the services that
read them must keep their clocks in sync (NTP), as they already must for TTLs.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
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


async def read_hosts(js: JetStreamContext) -> dict[str, HostHeartbeat]:
    """Every host's latest heartbeat (an empty dict when none announced itself yet). Raises
    `nats.errors.Error` or `TimeoutError` when the bucket cannot be read.

    The keys come from the stream's own list of subjects, then each is read by a direct get. A
    KV watcher is not used: nats-py ends its initial values when the consumer reports nothing
    pending, which it can do before the values already delivered were handed over, and a read
    that saw no host would place every sandbox on `local`."""
    # One stream info gives both the keys and what `js.key_value` would read for the bucket.
    stream = f"KV_{subjects.HOSTS_BUCKET}"
    prefix = f"{subjects.HOSTS_KV_PREFIX}."
    info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
    kv = KeyValue(
        name=subjects.HOSTS_BUCKET, stream=stream, pre=prefix, js=js, direct=bool(info.config.allow_direct)
    )
    keys = sorted(subject[len(prefix) :] for subject in info.state.subjects or {})
    found: dict[str, HostHeartbeat] = {}
    for key, entry in zip(keys, await asyncio.gather(*(_get(kv, key) for key in keys)), strict=True):
        if entry is None or entry.value is None:
            continue
        try:
            found[key] = HostHeartbeat.model_validate_json(entry.value)
        except ValidationError:
            logger.warning("unreadable host heartbeat", extra={"hostId": key})
    return found


async def _get(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    """The key's entry; None once deleted or purged."""
    try:
        return await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
