"""Rate limits, shared by every API process: counted in PostgreSQL (`SBX_RATE_LIMIT_STORAGE`
`postgres`, the default), or in this process only (`memory`, for a single-process API).

The window moves: a limit of N per period P never lets more than N requests through within any
span of P. Each (limit, identity) keeps its hits in at most 101 sub-windows of P/100, each hit
stamped with the end of its sub-window (so it counts up to P/100 longer than P, never shorter).
In PostgreSQL one call of the function `rate_limit_hit` (migration 0015) updates them under the
row's lock, on the database's clock: every API worker and instance sees the same budget.
`Retry-After` is when the oldest hits leave the window (at most P).

Any route can add a limit of its own with `enforce`, for example (sandbox creation):

    await ratelimit.enforce(request, "sandbox-create", str(caller.user_id),
                            ratelimit.per_minutes(settings.sandbox_create_rate_limit))

Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
(seconds until the whole budget is back) of the most constraining limit the request went
through; a refused request raises `RateLimited` (429, `Retry-After`, `details.retryAfter`).
Counting failures (database down) let the request through and log a warning: the limits protect
the platform, they must not stop it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sbx_common.errors import RateLimited
from starlette.requests import HTTPConnection

logger = logging.getLogger(__name__)

# Where `enforce` leaves the headers for the middleware that writes them on the response.
RESPONSE_HEADERS_KEY = "sbx_rate_limit_headers"
SUB_WINDOWS = 100  # per period; the same number as in `rate_limit_hit`
PRUNE_SECONDS = 60.0


@dataclass(frozen=True)
class Limit:
    """`amount` requests per `seconds`."""

    amount: int
    seconds: float

    @property
    def width(self) -> float:
        """Seconds per sub-window."""
        return self.seconds / SUB_WINDOWS


def per_minutes(amount: int, minutes: int = 1) -> Limit:
    """`amount` requests per `minutes` minutes."""
    return Limit(amount, 60.0 * minutes)


@dataclass(frozen=True)
class Quota:
    """Where a caller stands against one limit after a hit."""

    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int = 0  # seconds until a refused caller may try again

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def quota_after(limit: Limit, accepted: bool, used: int, oldest_leaves: float, newest_leaves: float) -> Quota:
    """The quota once `used` hits are in the window, the oldest leaving in `oldest_leaves`
    seconds and the newest in `newest_leaves`."""
    longest = math.ceil(limit.seconds)
    return Quota(
        limit=limit.amount,
        remaining=max(0, limit.amount - used) if accepted else 0,
        reset_seconds=min(longest, max(1, math.ceil(newest_leaves))),
        retry_after=0 if accepted else min(longest, max(1, math.ceil(oldest_leaves))),
    )


class RateLimiter(Protocol):
    async def hit(self, bucket: str, identity: str, limit: Limit) -> tuple[bool, Quota]:
        """Count one request; (accepted, where the caller now stands)."""

    async def prune_forever(self) -> None:
        """Forget budgets that are whole again, every PRUNE_SECONDS."""


class PostgresRateLimiter:
    """Windows in the `rate_limits` table, shared by every API process on the database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def hit(self, bucket: str, identity: str, limit: Limit) -> tuple[bool, Quota]:
        row = await self._pool.fetchrow(
            "SELECT * FROM rate_limit_hit($1, $2, $3, $4)", bucket, identity, limit.amount, limit.seconds
        )
        return quota_of(limit, row)

    async def prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            try:
                await self._pool.execute(
                    "DELETE FROM rate_limits WHERE expires < extract(epoch FROM clock_timestamp())"
                )
            except Exception:
                logger.warning("rate limit pruning failed", exc_info=True)


class MemoryRateLimiter:
    """The same windows in this process: right only for an API of one process and instance."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], collections.deque[list[int]]] = {}
        self._expires: dict[tuple[str, str], float] = {}  # when each window is empty again

    async def hit(self, bucket: str, identity: str, limit: Limit) -> tuple[bool, Quota]:
        now = time.time()
        window = self._windows.setdefault((bucket, identity), collections.deque())
        while window and window[0][0] * limit.width + limit.seconds <= now:
            window.popleft()
        used = sum(count for _, count in window)
        accepted = used < limit.amount
        if accepted:
            slot = math.ceil(now / limit.width)
            if window and window[-1][0] == slot:
                window[-1][1] += 1
            else:
                window.append([slot, 1])
            used += 1
        if not window:
            return accepted, quota_after(limit, accepted, used, 0.0, 0.0)
        leaves = [slot * limit.width + limit.seconds - now for slot in (window[0][0], window[-1][0])]
        self._expires[(bucket, identity)] = now + leaves[1]
        return accepted, quota_after(limit, accepted, used, leaves[0], leaves[1])

    async def prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            now = time.time()
            for key in [key for key, expires in self._expires.items() if expires <= now]:
                self._windows.pop(key, None)
                self._expires.pop(key, None)


def limiter_for(storage: str, pool: asyncpg.Pool) -> RateLimiter:
    """The limiter SBX_RATE_LIMIT_STORAGE names: `postgres` (shared) or `memory` (this process)."""
    if storage.removesuffix("://") == "memory":
        return MemoryRateLimiter()
    return PostgresRateLimiter(pool)


def limiter_of(conn: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = conn.app.state.sbx.limiter
    return limiter


def client_ip(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client is not None else "unknown"


async def enforce(conn: HTTPConnection, bucket: str, identity: str, limit: Limit) -> None:
    """Count this request against `limit` for `identity` in `bucket`; raise RateLimited when over.

    `bucket` names the limit ("global", "auth", "sandbox-create"...), `identity` whom it counts
    (a user id, or an IP before authentication). Sets the RateLimit-* headers either way.
    """
    try:
        accepted, quota = await limiter_of(conn).hit(bucket, identity, limit)
    except Exception:
        logger.warning("rate limit storage unavailable; request let through", exc_info=True)
        return
    record(conn, accepted, quota)


def counted_in_database(conn: HTTPConnection) -> bool:
    """Whether hits are counted by `rate_limit_hit` in PostgreSQL, so a query of the request's
    own can make one (`deps.global_limits` does, with the caller's lookup)."""
    return isinstance(limiter_of(conn), PostgresRateLimiter)


def quota_of(limit: Limit, row: Mapping[str, Any]) -> tuple[bool, Quota]:
    """(accepted, quota) from the columns `rate_limit_hit` returns."""
    accepted = bool(row["accepted"])
    return accepted, quota_after(limit, accepted, row["used"], row["oldest_leaves"], row["newest_leaves"])


def record(conn: HTTPConnection, accepted: bool, quota: Quota) -> None:
    """Keep the RateLimit-* headers of the most constraining limit; raise RateLimited if refused."""
    state = conn.scope.setdefault("state", {})
    current: Quota | None = state.get(RESPONSE_HEADERS_KEY)
    if not accepted or current is None or quota.remaining < current.remaining:
        state[RESPONSE_HEADERS_KEY] = quota
    if not accepted:
        raise RateLimited(retry_after=quota.retry_after)


def response_headers(scope_state: dict[str, object]) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers `enforce` chose for this request (none if it was not limited)."""
    quota = scope_state.get(RESPONSE_HEADERS_KEY)
    if not isinstance(quota, Quota):
        return []
    return [(k.lower().encode(), v.encode()) for k, v in quota.headers().items()]
