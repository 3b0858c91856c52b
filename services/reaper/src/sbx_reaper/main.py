"""`sbx-reaper`: TTL expiry, orphan containers and repair of unsettled sandboxes.

The reaper writes one table, `lost_sandboxes` (hosts that stopped heartbeating): otherwise it reads
`sandbox_view`, publishes idempotent commands with deterministic ids, and, on a host
(`SBX_REAPER_DOCKER`), removes orphan containers and snapshot images of its own instance from
that host's engine. Safe to run twice.
"""

from __future__ import annotations

import asyncio

import asyncpg
from nats.aio.client import Client as NatsClient
from sbx_common import db
from sbx_common.broker import WorkerBroker
from sbx_common.consumer_lag import start_lag_export
from sbx_common.tasks import cancel_and_wait
from sbx_common.topology import STREAM_EVT
from sbx_common.worker import run_worker

from sbx_reaper.command_publisher import CommandPublisher
from sbx_reaper.config import ReaperSettings
from sbx_reaper.event_consumer import DURABLE, subscribe_events
from sbx_reaper.hosts import LostHosts
from sbx_reaper.orphans import OrphanReaper
from sbx_reaper.repair import Repairer
from sbx_reaper.repository import SandboxReader
from sbx_reaper.storage import StorageRepair
from sbx_reaper.sweep import Step, Sweeper
from sbx_reaper.ttl import TtlTimers


class Reaper:
    def __init__(self, settings: ReaperSettings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._timers: TtlTimers | None = None
        self._broker: WorkerBroker | None = None
        self._lag: asyncio.Task[None] | None = None
        self._orphans: OrphanReaper | None = None
        self._storage: StorageRepair | None = None
        self._sweeper: Sweeper | None = None

    async def start(self, nc: NatsClient) -> None:
        s = self.settings
        self._pool = await db.create_pool(s.database_url.get_secret_value(), min_size=1, max_size=4)
        reader = SandboxReader(self._pool)
        publisher = CommandPublisher(nc.jetstream())
        # Timers cover the next two sweeps, so a sandbox is armed well before it is due.
        self._timers = TtlTimers(reader, publisher, horizon=2 * s.reaper_sweep_interval_seconds + 2)
        repairer = Repairer(
            nc,
            reader,
            publisher,
            untaken_after=s.reaper_untaken_after_seconds,
            stuck_timeout=s.reaper_stuck_timeout_seconds,
            max_republish=s.reaper_stuck_max_republish,
        )
        self._orphans = OrphanReaper(reader, s.instance, s.reaper_orphan_grace_seconds)
        self._storage = StorageRepair(
            self._pool,
            publisher,
            s.instance,
            untaken_after=s.reaper_untaken_after_seconds,
            stuck_timeout=s.reaper_stuck_timeout_seconds,
            max_republish=s.reaper_stuck_max_republish,
            grace=s.reaper_orphan_grace_seconds,
        )
        self._broker = WorkerBroker(nc)
        subscribe_events(self._broker, self._timers.on_event)
        await self._broker.start()
        self._lag = start_lag_export(nc.jetstream(), STREAM_EVT, DURABLE)
        lost_hosts = LostHosts(self._pool, nc.jetstream(), s.host_grace)
        docker_steps: list[Step] = (
            [("orphans", self._orphans.sweep), ("images", self._storage.sweep_images)]
            if s.reaper_docker
            else []
        )
        self._sweeper = Sweeper(
            self._pool,
            s.reaper_sweep_interval_seconds,
            shared=[("ttl", self._timers.sweep)],
            exclusive=[
                ("repair", repairer.sweep),
                ("storage", self._storage.sweep),
                ("hosts", lost_hosts.sweep),
            ],
            host_steps=docker_steps,
            host_id=s.host_id,
        )
        self._sweeper.start()

    async def stop(self) -> None:
        if self._sweeper is not None:
            await self._sweeper.stop()
        if self._broker is not None:
            await self._broker.stop()
        await cancel_and_wait([self._lag])
        if self._timers is not None:
            await self._timers.close()
        if self._orphans is not None:
            self._orphans.close()
        if self._storage is not None:
            self._storage.close()
        if self._pool is not None:
            await self._pool.close()

    async def checks(self) -> dict[str, bool]:
        return {"db": self._pool is not None and await db.reachable(self._pool)}


def main() -> None:
    settings = ReaperSettings()
    run_worker("reaper", settings, Reaper(settings))
