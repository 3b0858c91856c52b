"""Warm pools: ready containers of an environment version, waiting for their owner's creates.

Every `warm_pool_interval` seconds one pass drains what is stale and makes what is missing:

- A slot (a `warm_pool_slots` row) reserves a sandbox id; its container is `sbx-<id>` with the
  labels of a sandbox of that id and owner, made from the version as a create would make it (the
  environment's secrets included: they are the environment's own; no per-sandbox `env`, no
  volumes). It is `ready` once it runs and its network is guarded by the version's policy (the
  policy every create of that version gets). The API claims a ready slot by deleting its row and
  inserting the sandbox of the same id in one transaction; the create command then finds the
  container running (`Lifecycle._run`) and its rules already loaded (the guard's load finds
  nothing to change: no `iptables-restore` on the claim's path), and records `running`.
- Stale: the environment is deleted, has a newer version, a smaller `warmPool`, or changed after
  the slot was made (`updated_at`: a secret was set or deleted), or the slot never became ready
  within two minutes. Its row goes first (so nobody claims it), then its container.
- Missing: up to `warmPool` slots per current version, only while the owner's sandboxes that are
  not terminal plus its slots stay within the owner's quotas. Versions with a fixed host port get
  no pool (two containers cannot bind the same port).

A container whose row is gone (drained while being made, or an orchestrator that stopped midway)
is removed here, or by the reaper's orphan sweep, which keeps only live sandboxes and slots.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sbx_common import labels, subjects
from sbx_common.network import NetworkPolicy
from sbx_common.status import TERMINAL, Verb
from sbx_common.tasks import cancel_and_wait

from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.engine.containers import read_state
from sbx_orchestrator.host_presence import host_capacity
from sbx_orchestrator.repository import PortSpec, SandboxRecord

logger = logging.getLogger(__name__)

_DRAIN = """
DELETE FROM warm_pool_slots d USING (
    SELECT s.id, row_number() OVER (
               PARTITION BY s.environment_id, s.environment_version ORDER BY s.ready DESC, s.created_at
           ) AS rank,
           e.deleted_at, e.current_version, e.updated_at, v.warm_pool
    FROM warm_pool_slots s
    JOIN environments e ON e.id = s.environment_id
    LEFT JOIN environment_versions v ON v.environment_id = e.id AND v.version = e.current_version
) c
WHERE d.id = c.id AND d.host_id = $1 AND (
    c.deleted_at IS NOT NULL
    OR c.current_version <> d.environment_version
    OR c.updated_at > d.created_at
    OR c.rank > coalesce(c.warm_pool, 0)
    OR (NOT d.ready AND d.created_at < clock_timestamp() - interval '2 minutes')
)
RETURNING d.id
"""

# Current versions that want a pool, with how many slots they have and their owner's usage.
_WANTED = """
SELECT e.id AS environment_id, e.owner_id, v.version, v.image, v.cpu, v.memory_mib, v.ports, v.env,
       v.command, v.network, v.runtime, v.disk_mib, v.warm_pool,
       (SELECT count(*) FROM warm_pool_slots s
         WHERE s.environment_id = e.id AND s.environment_version = v.version) AS slots
FROM environments e
JOIN environment_versions v ON v.environment_id = e.id AND v.version = e.current_version
WHERE e.deleted_at IS NULL AND v.warm_pool > 0
  AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v.ports) p WHERE p ? 'host')
ORDER BY e.created_at, e.id
"""

_USAGE = """
WITH live AS (
    SELECT ev.cpu, ev.memory_mib FROM sandbox_view v
    JOIN environment_versions ev
      ON ev.environment_id = v.environment_id AND ev.version = v.environment_version
    WHERE v.owner_id = $1 AND v.status <> ALL($2::text[])
    UNION ALL
    SELECT cpu, memory_mib FROM warm_pool_slots WHERE owner_id = $1
)
SELECT count(*) AS sandboxes, coalesce(sum(cpu), 0) AS cpu, coalesce(sum(memory_mib), 0) AS memory FROM live
"""

# Under the owner's lock: the version's slots on every host (two hosts never overfill a pool).
_SLOTS = "SELECT count(*) FROM warm_pool_slots WHERE environment_id = $1 AND environment_version = $2"

# What is placed on this host (the API's placement counts the same, under the same lock).
_HOST_USED = """
SELECT coalesce(sum(cpu), 0) AS cpu, coalesce(sum(memory_mib), 0) AS memory FROM (
    SELECT ev.cpu, ev.memory_mib FROM sandbox_view v
    JOIN environment_versions ev
      ON ev.environment_id = v.environment_id AND ev.version = v.environment_version
    WHERE v.host_id = $1 AND v.status NOT IN ('destroyed', 'expired')
    UNION ALL
    SELECT cpu, memory_mib FROM warm_pool_slots WHERE host_id = $1
) a
"""

_TERMINAL = sorted(status.value for status in TERMINAL)
# The API's per-owner quota lock (sbx_api.sandboxes.repository.lock_owner_quota).
QUOTA_LOCK_NAMESPACE = 0x5B8_0002
# The API's per-host placement lock (sbx_api.hosts.placement.HOST_LOCK_NAMESPACE).
HOST_LOCK_NAMESPACE = 0x5B8_0003


@dataclass(frozen=True)
class Usage:
    sandboxes: int
    cpu: float
    memory_mib: int


class WarmPool:
    """The orchestrator's component that keeps every pool filled and drained."""

    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.settings = context.settings
        self._task: asyncio.Task[None] | None = None
        self._making: set[uuid.UUID] = set()
        self._limit = asyncio.Semaphore(self.settings.warm_pool_concurrency)
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="warm-pool")

    async def stop(self) -> None:
        await cancel_and_wait([t for t in [self._task, *self._jobs] if t is not None])

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("warm pool pass failed")
            await asyncio.sleep(self.settings.warm_pool_interval)

    async def sweep(self) -> None:
        pool = self.context.pool
        for row in await pool.fetch(_DRAIN, self.settings.host_id):
            if row["id"] not in self._making:  # else the maker removes it once it sees the row gone
                await self._discard(row["id"])
                logger.info("pooled container drained", extra={"sandboxId": str(row["id"])})
        for wanted in await pool.fetch(_WANTED):
            for _ in range(int(wanted["warm_pool"]) - int(wanted["slots"])):
                slot_id = await self._reserve(wanted)
                if slot_id is None:
                    break
                job = asyncio.create_task(self._make(slot_id, wanted), name="warm-pool-make")
                self._jobs.add(job)
                job.add_done_callback(self._jobs.discard)

    async def _reserve(self, wanted: asyncpg.Record) -> uuid.UUID | None:
        """Insert a slot on this host if the owner's quotas and the host leave room for it
        (serialised with the API's creates of this owner, and its placements on this host, by
        the same advisory locks, taken in the same order). A draining host or one that cannot
        say what it offers makes none; with several hosts, whichever has room first fills the
        pool (docs/warm-pools.md). The single host of a one-host installation (`local`) is not
        held to a capacity, as the API's placement does not hold it to one either."""
        s = self.settings
        capacity = None if s.host_id == subjects.DEFAULT_HOST else await host_capacity(self.context)
        if capacity is None and s.host_id != subjects.DEFAULT_HOST:
            return None
        async with self.context.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))",
                QUOTA_LOCK_NAMESPACE,
                str(wanted["owner_id"]),
            )
            if (
                await conn.fetchval(_SLOTS, wanted["environment_id"], wanted["version"])
                >= wanted["warm_pool"]
            ):
                return None
            if await conn.fetchval("SELECT draining FROM hosts WHERE host_id = $1", s.host_id):
                return None
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))", HOST_LOCK_NAMESPACE, s.host_id
            )
            if capacity is not None:
                used = await conn.fetchrow(_HOST_USED, s.host_id)
                cpus, memory_mib = capacity
                if (
                    float(used["cpu"]) + float(wanted["cpu"]) > cpus + 1e-9
                    or int(used["memory"]) + int(wanted["memory_mib"]) > memory_mib
                ):
                    return None
            row = await conn.fetchrow(_USAGE, wanted["owner_id"], _TERMINAL)
            usage = Usage(int(row["sandboxes"]), float(row["cpu"]), int(row["memory"]))
            if (
                usage.sandboxes + 1 > s.max_sandboxes_per_user
                or usage.cpu + float(wanted["cpu"]) > s.max_cpu_per_user + 1e-9
                or usage.memory_mib + int(wanted["memory_mib"]) > s.max_memory_per_user
            ):
                return None
            slot_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO warm_pool_slots"
                " (id, owner_id, environment_id, environment_version, cpu, memory_mib, host_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                slot_id,
                wanted["owner_id"],
                wanted["environment_id"],
                wanted["version"],
                wanted["cpu"],
                wanted["memory_mib"],
                s.host_id,
            )
        self._making.add(slot_id)
        return slot_id

    async def _make(self, slot_id: uuid.UUID, wanted: asyncpg.Record) -> None:
        record = _record(slot_id, wanted)
        try:
            async with self._limit:
                await self._start_guarded(record)
                ready = await self.context.pool.fetchval(
                    "UPDATE warm_pool_slots SET ready = true WHERE id = $1 RETURNING true", slot_id
                )
            if not ready:  # drained (or its version replaced) while it was being made
                await self._discard(slot_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pooled container could not be made", extra={"sandboxId": str(slot_id)})
            await self.context.pool.execute("DELETE FROM warm_pool_slots WHERE id = $1", slot_id)
            await self._discard(slot_id)
        finally:
            self._making.discard(slot_id)

    async def _start_guarded(self, record: SandboxRecord) -> None:
        """Make and start the container, then guard it by the policy its sandbox will have: the
        claim's create finds the rules in place instead of loading them while its caller waits."""
        engine = self.context.engine
        state = read_state(await self.context.lifecycle.pooled_container(record))
        if not state.running:
            await engine.start(state.id)
        started = await engine.inspect(state.id)
        if started is None or not read_state(started).running:
            raise RuntimeError("the pooled container ended as it started")
        await self.context.guard.apply(record.id, started, record.network)

    async def _discard(self, slot_id: uuid.UUID) -> None:
        """A pooled container that nobody claimed goes: its rules first (while it still holds
        its address, so no other container can be handed the address with them), then itself."""
        await self.context.guard.release(slot_id)
        await self.context.engine.remove(labels.container_name(slot_id))


def _record(slot_id: uuid.UUID, wanted: asyncpg.Record) -> SandboxRecord:
    """The sandbox a create without per-sandbox `env` or volumes would make from the version."""
    ports: list[dict[str, Any]] = list(wanted["ports"] or [])
    return SandboxRecord(
        id=slot_id,
        owner_id=wanted["owner_id"],
        environment_id=wanted["environment_id"],
        environment_version=wanted["version"],
        image=wanted["image"],
        cpu=float(wanted["cpu"]),
        memory_mib=int(wanted["memory_mib"]),
        ports=[PortSpec(container=int(p["container"]), host=None) for p in ports],
        env={str(k): str(v) for k, v in (wanted["env"] or {}).items()},
        command=[str(part) for part in wanted["command"]] if wanted["command"] else None,
        last_command_id=uuid.uuid4(),
        last_command_verb=Verb.CREATE,
        runtime=None,
        container_runtime=wanted["runtime"] or "runc",
        disk_mib=int(wanted["disk_mib"] or 0),
        network=NetworkPolicy.from_json(wanted["network"]),
    )
