"""The business gauges of the API's `/metrics` (users, environments, sandboxes), counted in
PostgreSQL in the background rather than at each scrape."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

logger = logging.getLogger(__name__)

DB_TIMEOUT = 2.0


@dataclass(frozen=True)
class Totals:
    users: int
    environments: int
    sandboxes: int
    sandboxes_running: int


async def business_totals(pool: asyncpg.Pool) -> Totals | None:
    """Counts read from PostgreSQL in one round trip (None if it is down)."""
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            row = await pool.fetchrow(
                "SELECT (SELECT count(*) FROM users) AS users,"
                " (SELECT count(*) FROM environments WHERE deleted_at IS NULL) AS environments,"
                " s.live AS sandboxes, s.running"
                " FROM (SELECT count(*) FILTER (WHERE status NOT IN ('destroyed', 'expired')) AS live,"
                " count(*) FILTER (WHERE status = 'running') AS running FROM sandbox_view) AS s"
            )
    except Exception:
        logger.warning("metrics query failed", exc_info=True)
        return None
    return Totals(row["users"], row["environments"], row["sandboxes"], row["running"])


class BusinessGauges:
    """The business gauges of `/metrics`, refreshed in the background every
    SBX_METRICS_REFRESH_SECONDS: a scrape (or many) never runs the counting queries itself."""

    def __init__(self) -> None:
        self.totals: Totals | None = None

    async def refresh_forever(self, pool: asyncpg.Pool, interval: float) -> None:
        while True:
            totals = await business_totals(pool)
            if totals is not None:
                self.totals = totals
            await asyncio.sleep(interval)
