"""Per-user caps on what a user holds open at once: execs under way, terminal sessions, and event
and log streams (SSE and WebSockets). Over a cap an HTTP route answers 429 `QUOTA_EXCEEDED` with
`details.limit` and `details.current`, and a socket closes with 4029.

The counts live behind `UsageCounter`. `SharedUsage` (what the API runs) keeps one row per unit
held in PostgreSQL, so a cap holds across every API worker process and instance. `LocalUsage`
counts in one process only (kept for tools and single-process use).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, Protocol

import asyncpg
from sbx_common.errors import QuotaExceeded

from sbx_api.api_instances import LEASE_SECONDS

logger = logging.getLogger(__name__)


class Held(StrEnum):
    EXECS = "execs"
    TERMINALS = "terminals"
    STREAMS = "streams"
    PROXY_SOCKETS = "proxy_sockets"


_NAMES = {
    Held.EXECS: "commands running at once",
    Held.TERMINALS: "terminal sessions",
    Held.STREAMS: "open event and log streams",
    Held.PROXY_SOCKETS: "open WebSockets to sandbox ports",
}


class CapReached(Exception):
    def __init__(self, kind: Held, limit: int, current: int) -> None:
        super().__init__(f"At most {limit} {_NAMES[kind]} per user; {current} are open.")
        self.kind = kind
        self.limit = limit
        self.current = current

    def as_error(self) -> QuotaExceeded:
        """The HTTP answer: 429 QUOTA_EXCEEDED with `details.limit` and `details.current`."""
        details = {"resource": self.kind.value, "limit": self.limit, "current": self.current}
        return QuotaExceeded(str(self), details)


class UsageCounter(Protocol):
    async def acquire(self, kind: Held, user_id: uuid.UUID, limit: int) -> int:
        """Take one unit (returns the count with it), or raise CapReached at `limit`."""

    async def release(self, kind: Held, user_id: uuid.UUID) -> None: ...


class LocalUsage:
    """Counts in this process (asyncio: no lock needed between the check and the increment)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[Held, uuid.UUID], int] = {}

    async def acquire(self, kind: Held, user_id: uuid.UUID, limit: int) -> int:
        key = (kind, user_id)
        current = self._counts.get(key, 0)
        if current >= limit:
            raise CapReached(kind, limit, current)
        self._counts[key] = current + 1
        return current + 1

    async def release(self, kind: Held, user_id: uuid.UUID) -> None:
        key = (kind, user_id)
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)

    def current(self, kind: Held, user_id: uuid.UUID) -> int:
        return self._counts.get((kind, user_id), 0)


class SharedUsage:
    """Units held as `usage_holds` rows of this API process (`processes.ApiProcess`).

    Taking one counts the user's rows of live processes and inserts one under a transaction-
    scoped advisory lock per (kind, user): two workers taking the last unit at once cannot both
    get it. Rows of a process that stopped renewing its lease do not count."""

    def __init__(self, pool: asyncpg.Pool, process_id: uuid.UUID) -> None:
        self._pool = pool
        self._process_id = process_id

    async def acquire(self, kind: Held, user_id: uuid.UUID, limit: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"usage:{kind}:{user_id}"
            )
            current: int = await conn.fetchval(
                "SELECT count(*) FROM usage_holds h JOIN api_processes p ON p.id = h.process_id"
                " WHERE h.user_id = $1 AND h.kind = $2"
                " AND p.seen_at > now() - make_interval(secs => $3)",
                user_id,
                kind.value,
                LEASE_SECONDS,
            )
            if current >= limit:
                raise CapReached(kind, limit, current)
            await conn.execute(
                "INSERT INTO usage_holds (id, process_id, kind, user_id) VALUES ($1, $2, $3, $4)",
                uuid.uuid4(),
                self._process_id,
                kind.value,
                user_id,
            )
        return current + 1

    async def release(self, kind: Held, user_id: uuid.UUID) -> None:
        """Give one unit back. Runs where a socket or exec ends, so it never raises: with the
        database down the row stays until this process stops (it holds the unit a while longer)."""
        try:
            await self._pool.execute(
                "DELETE FROM usage_holds WHERE id = (SELECT id FROM usage_holds"
                " WHERE process_id = $1 AND kind = $2 AND user_id = $3 LIMIT 1)",
                self._process_id,
                kind.value,
                user_id,
            )
        except Exception:
            logger.warning("usage hold not released", exc_info=True)


@asynccontextmanager
async def holding(counter: UsageCounter, kind: Held, user_id: uuid.UUID, limit: int) -> AsyncIterator[None]:
    """Hold one unit for the block; 429 QUOTA_EXCEEDED at the cap."""
    try:
        await counter.acquire(kind, user_id, limit)
    except CapReached as exc:
        raise exc.as_error() from None
    try:
        yield
    finally:
        await counter.release(kind, user_id)


# OpenAPI: the 429 of routes that hold a unit while they run.
CAP_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "QUOTA_EXCEEDED: a per-user cap on what is open at once was reached; "
        "`details` has `resource`, `limit` and `current`.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }
}
