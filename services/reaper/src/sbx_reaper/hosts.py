"""Lost hosts: a host whose heartbeat (KV bucket `sbx_hosts`) is older than `SBX_HOST_GRACE` is
lost, and the platform gives up its sandboxes that are not destroyed or expired: they are recorded
in `lost_sandboxes` (this service's one table), which `sandbox_view` shows as `failed` with reason
`host lost`, and a `sandbox.failed` event goes out for each (id derived from the sandbox, so a
repeat is dropped by the stream). When the host comes back its orchestrator removes their
containers and never runs them again (docs/scale-out.md).

A host is declared lost only once this reaper itself has seen its heartbeat stale for the whole
grace (after a restart of the whole platform every heartbeat is old, and the hosts get the grace
to announce themselves again before anything is given up), and only while another host's
heartbeat is fresh: when every host is silent the fault is more likely the bus or the whole
installation than the hosts, and a single-host installation never gives up its sandboxes (its
orchestrator carries on where it stopped, as before hosts existed).
"""

from __future__ import annotations

import logging
import time
import uuid

import asyncpg
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from sbx_common import subjects
from sbx_common.codes import HOST_LOST
from sbx_common.hosts import read_hosts
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status

from sbx_reaper import metrics
from sbx_reaper.command_publisher import NAMESPACE

logger = logging.getLogger(__name__)

# Sandboxes of a lost host the platform has not given up yet; recorded in the same statement.
_GIVE_UP = """
INSERT INTO lost_sandboxes (sandbox_id, host_id)
SELECT v.id, v.host_id FROM sandbox_view v
WHERE v.host_id = $1 AND v.status NOT IN ('destroyed', 'expired') AND v.lost_at IS NULL
ON CONFLICT (sandbox_id) DO NOTHING
RETURNING sandbox_id
"""

# Recently given up: their events are published again on every sweep while the stream's
# duplicate window (2 min) still drops the copies, so an event lost with a crash goes out later.
_RECENT = """
SELECT l.sandbox_id, s.owner_id, l.host_id FROM lost_sandboxes l JOIN sandboxes s ON s.id = l.sandbox_id
WHERE l.lost_at > now() - interval '90 seconds'
"""


def lost_event_id(sandbox_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{sandbox_id}:host-lost")


class LostHosts:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, grace: float) -> None:
        self._pool = pool
        self._js = js
        self._grace = grace
        self._stale_since: dict[str, float] = {}  # host -> when this reaper first saw it stale

    async def sweep(self) -> None:
        try:
            hosts = await read_hosts(self._js)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            logger.warning("hosts' registry unreadable: lost hosts not checked", extra={"error": repr(exc)})
            return
        now = time.monotonic()
        alive = {host_id for host_id, heartbeat in hosts.items() if heartbeat.age() <= self._grace}
        for host_id, heartbeat in hosts.items():
            if heartbeat.age() <= self._grace:
                self._stale_since.pop(host_id, None)
                continue
            since = self._stale_since.setdefault(host_id, now)
            if now - since < self._grace or not alive:
                continue
            given_up = await self._pool.fetch(_GIVE_UP, host_id)
            if given_up:
                metrics.SANDBOXES_LOST.inc(len(given_up))
                logger.warning(
                    "host lost: its sandboxes are given up",
                    extra={"hostId": host_id, "sandboxes": len(given_up), "heartbeatAge": heartbeat.age()},
                )
        await self._announce()

    async def _announce(self) -> None:
        for row in await self._pool.fetch(_RECENT):
            event = SandboxEvent(
                id=lost_event_id(row["sandbox_id"]),
                sandbox_id=row["sandbox_id"],
                owner_id=row["owner_id"],
                status=Status.FAILED,
                reason=HOST_LOST,
                data={"hostId": row["host_id"]},
            )
            try:
                await self._js.publish(
                    subjects.event(event.owner_id, event.sandbox_id, event.status.value),
                    event.to_bytes(),
                    headers={"Nats-Msg-Id": str(event.id)},
                )
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                logger.warning("host-lost event not published", extra={"error": repr(exc)})
                return
