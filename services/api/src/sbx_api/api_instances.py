"""This API process in the `api_processes` table, renewed every HEARTBEAT_SECONDS.

What a process holds for its users (open sockets, execs under way: `usage.SharedUsage`) counts
only while the process is alive by this table: a process that crashed stops renewing, and after
LEASE_SECONDS its holds no longer count against anyone's caps (its sockets died with it).
Clean stops remove the row, and with it the holds (ON DELETE CASCADE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import asyncpg

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
LEASE_SECONDS = 30.0
# Rows of processes silent this long are deleted (their holds with them) by any live process.
FORGET_SECONDS = 300.0


class ApiProcess:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.id = uuid.uuid4()
        self._pool = pool

    async def register(self) -> None:
        await self._renew()

    async def _renew(self) -> None:
        await self._pool.execute(
            "INSERT INTO api_processes (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET seen_at = now()",
            self.id,
        )

    async def heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._renew()
                await self._pool.execute(
                    "DELETE FROM api_processes WHERE seen_at < now() - make_interval(secs => $1)",
                    FORGET_SECONDS,
                )
            except Exception:
                logger.warning("API process heartbeat failed", exc_info=True)

    async def unregister(self) -> None:
        with contextlib.suppress(Exception):
            await self._pool.execute("DELETE FROM api_processes WHERE id = $1", self.id)
