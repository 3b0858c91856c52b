"""The periodic sweep: TTL timers in every reaper, repairs and orphans in one at a time.

Every `interval` seconds (and once at start-up, which loads the TTL timers) each reaper runs its
shared steps (arming its own in-process timers), then, if it holds a PostgreSQL advisory lock,
the exclusive ones; another reaper skips those that round. Two reapers doing the same work would
be harmless (deterministic command ids, idempotent removals); the lock only saves the work. A
failing step is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from sbx_common.tasks import cancel_and_wait

from sbx_reaper import metrics

logger = logging.getLogger(__name__)

SWEEP_LOCK = 0x5B8_0002  # pg_advisory_lock key (0x5B8_0001 is the migrator's)
# pg_advisory_lock(namespace, hashtext(host id)): the Docker sweeps of one host, one reaper at a time.
HOST_SWEEP_LOCK_NAMESPACE = 0x5B8_0004

Step = tuple[str, Callable[[], Awaitable[None]]]


class Sweeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        interval: float,
        shared: list[Step],
        exclusive: list[Step],
        *,
        host_steps: list[Step] | None = None,
        host_id: str = "",
    ) -> None:
        self._pool = pool
        self._interval = interval
        self._shared = shared
        self._exclusive = exclusive
        # Steps on this host's Docker engine: one reaper per host at a time.
        self._host_steps = host_steps or []
        self._host_id = host_id
        self._task: asyncio.Task[None] | None = None
        self.db_ok = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sweep_once()
                self.db_ok = True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.db_ok = False
                logger.warning("sweep skipped: database unavailable", extra={"error": repr(exc)})
            metrics.SWEEP_SECONDS.observe(time.monotonic() - started)
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def sweep_once(self) -> bool:
        """Run the shared steps, then the exclusive ones unless another reaper holds the lock."""
        await self._run_steps(self._shared)
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK):
                return False
            try:
                await self._run_steps(self._exclusive)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
        if self._host_steps:
            await self._run_host_steps()
        return True

    async def _run_host_steps(self) -> None:
        key = (HOST_SWEEP_LOCK_NAMESPACE, self._host_id)
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1::int, hashtext($2::text))", *key):
                return
            try:
                await self._run_steps(self._host_steps)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1::int, hashtext($2::text))", *key)

    @staticmethod
    async def _run_steps(steps: list[Step]) -> None:
        for name, step in steps:
            try:
                await step()
            except Exception:
                logger.exception("sweep step failed", extra={"step": name})
