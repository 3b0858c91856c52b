"""This host in the hosts' registry (docs/scale-out.md, "Hosts and placement").

- Heartbeat: every `HEARTBEAT_SECONDS` the host's entry in the KV bucket `sbx_hosts` (key = host
  id) is put again: capacity (the engine's CPUs and memory, or `SBX_HOST_CPUS` /
  `SBX_HOST_MEMORY_MIB`), what is placed on it (sandboxes, CPUs, memory), runtimes, labels,
  whether the engine answers, and the time. The API
  places new sandboxes only on hosts whose entry is fresh and whose engine answers; the reaper
  gives up the sandboxes of a host whose entry is older than `SBX_HOST_GRACE`.
- Coming back: sandboxes the platform gave up while this host was lost (`lost_sandboxes`) are
  never run again. At start (before commands are taken) and every `host_reconcile_interval`,
  their containers and firewall rules are removed and their runtime rows say `failed` /
  `host lost` (`Lifecycle.settle_lost`, which a command for such a sandbox also goes through).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import nats.errors
import nats.js.errors
from sbx_common import subjects
from sbx_common.hosts import HEARTBEAT_SECONDS, HostHeartbeat
from sbx_common.runtimes import RUNC
from sbx_common.tasks import cancel_and_wait

from sbx_orchestrator.context import OrchestratorContext

logger = logging.getLogger(__name__)


async def host_capacity(context: OrchestratorContext) -> tuple[float, int] | None:
    """CPUs and memory (MiB) this host offers to sandboxes: the settings', else the engine's;
    None while the engine cannot say."""
    s = context.settings
    info = await context.engine.info() if not (s.host_cpus and s.host_memory_mib) else None
    cpus = s.host_cpus or (info.cpus if info is not None else 0.0)
    memory_mib = s.host_memory_mib or (info.memory_mib if info is not None else 0)
    return (cpus, memory_mib) if cpus > 0 and memory_mib > 0 else None


class HostPresence:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.settings = context.settings
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.beat()
        await self.reconcile_lost()
        self._tasks = [
            asyncio.create_task(self._beat_forever(), name="host-heartbeat"),
            asyncio.create_task(self._reconcile_forever(), name="host-reconcile"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)

    async def heartbeat(self) -> HostHeartbeat:
        engine = self.context.engine
        engine_ok = await engine.ping()
        info = await engine.info() if engine_ok else None
        capacity = await host_capacity(self.context) if engine_ok else None
        cpus, memory_mib = capacity or (0.0, 0)
        try:
            sandboxes, cpus_allocated, memory_allocated = await self.context.repository.allocations()
        except Exception:  # the heartbeat still goes out: the engine's state is what it is about
            logger.warning("allocations not counted for the heartbeat", exc_info=True)
            sandboxes, cpus_allocated, memory_allocated = 0, 0.0, 0
        return HostHeartbeat(
            host_id=self.settings.host_id,
            cpus=cpus,
            memory_mib=memory_mib,
            sandboxes=sandboxes,
            cpus_allocated=cpus_allocated,
            memory_mib_allocated=memory_allocated,
            runtimes=info.runtimes if info is not None else [RUNC],
            labels=self.settings.host_labels,
            # A host that cannot say what it has is no place for a sandbox.
            engine_ok=engine_ok and info is not None and capacity is not None,
        )

    async def beat(self) -> None:
        heartbeat = await self.heartbeat()
        try:
            await self.context.js.publish(subjects.hosts_kv(self.settings.host_id), heartbeat.to_bytes())
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            logger.warning("heartbeat not published", extra={"error": repr(exc)})

    async def reconcile_lost(self) -> None:
        try:
            lost = await self.context.repository.lost_unsettled()
        except Exception:
            logger.exception("lost sandboxes could not be read")
            return
        for sandbox_id in lost:
            await self._settle(sandbox_id)

    async def _settle(self, sandbox_id: uuid.UUID) -> None:
        try:
            async with self.context.locks.hold(sandbox_id):
                sandbox = await self.context.repository.load_sandbox(sandbox_id)
                if sandbox is not None and sandbox.lost:
                    await self.context.lifecycle.settle_lost(sandbox)
        except Exception:
            logger.exception("lost sandbox not settled", extra={"sandboxId": str(sandbox_id)})

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.beat()
            except Exception:
                logger.exception("heartbeat failed")

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.host_reconcile_interval)
            await self.reconcile_lost()
