"""Rate limits, shared by every API process: counted in PostgreSQL (`SBX_RATE_LIMIT_STORAGE`
`postgres`, the default), or in this process only (`memory`, for a single-process API).

The window moves: a limit of N per period P never lets more than N requests through within any
span of P. Each (limit, identity) keeps its hits in at most 101 sub-windows of P/100, each hit
stamped with the end of its sub-window (so it counts up to P/100 longer than P, never shorter).
In PostgreSQL one call of the function `rate_limit_hit` (migration 0015) updates them under the
row's lock, on the database's clock: every API worker and instance sees the same budget.
`Retry-After` is when the oldest hits leave the window (at most P).

A caller sending many requests to one worker is not counted one row update each: the worker
takes several hits at once (a lease, `rate_limit_take`, migration 0023), stamped LEASE_SECONDS
ahead, and spends them locally within LEASE_SECONDS, so the bound above still holds across
workers. A lease asks for twice what the previous one served, at most what the limit allows in
LEASE_SECONDS (a budget of 100 per minute gets none: one hit per call, exact) and MAX_LEASE:
hits leased and never spent are the only cost, a caller refused that much early.

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
LEASE_SECONDS = 1.0  # a lease's hits are spent within this long of asking (they are stamped so)
MAX_LEASE = 64


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


@dataclass
class Lease:
    """Hits one worker took ahead for one (bucket, identity): `tokens` left to spend before
    `expires` (monotonic), where the caller stood when they were granted, and how many the
    current lease has served (the next one asks for twice that)."""

    tokens: int = 0
    expires: float = 0.0
    quota: Quota | None = None
    served: int = 0


def lease_size(limit: Limit, lease: Lease | None) -> int:
    """How many hits to ask for: twice what the last lease served (a lease used up), at most
    what the limit lets through in LEASE_SECONDS and MAX_LEASE, at least one."""
    cap = min(MAX_LEASE, max(1, int(limit.amount * LEASE_SECONDS / limit.seconds)))
    served = lease.served if lease is not None else 0
    return max(1, min(cap, 2 * served))


class PostgresRateLimiter:
    """Windows in the `rate_limits` table, shared by every API process on the database, spent
    through leases held per worker (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._leases: dict[tuple[str, str], Lease] = {}

    def take_leased(self, bucket: str, identity: str) -> Quota | None:
        """One hit from this worker's lease, when it holds one still good; else None."""
        lease = self._leases.get((bucket, identity))
        if lease is None or lease.tokens <= 0 or time.monotonic() >= lease.expires:
            return None
        lease.tokens -= 1
        lease.served += 1
        return lease.quota

    def give_back(self, bucket: str, identity: str) -> None:
        """A leased hit not spent after all (the request was refused before it counted)."""
        lease = self._leases.get((bucket, identity))
        if lease is not None and lease.served > 0:
            lease.tokens += 1
            lease.served -= 1

    def want(self, bucket: str, identity: str, limit: Limit) -> int:
        return lease_size(limit, self._leases.get((bucket, identity)))

    def granted(
        self, bucket: str, identity: str, limit: Limit, asked_at: float, row: Mapping[str, Any]
    ) -> tuple[bool, Quota]:
        """Keep what `rate_limit_take` granted, one hit spent on this request: (accepted,
        quota). `asked_at` is the monotonic time the call was sent: the hits were stamped
        LEASE_SECONDS after a moment later than that, so they are good until then."""
        granted = int(row["granted"])
        accepted = granted > 0
        quota = quota_after(limit, accepted, row["used"], row["oldest_leaves"], row["newest_leaves"])
        if accepted:
            key = (bucket, identity)
            lease = self._leases.get(key)
            if lease is not None and lease.tokens > 0 and time.monotonic() < lease.expires:
                # Another request's lease still good: pool them under the earlier expiry.
                lease.tokens += granted - 1
                lease.served += 1
                lease.quota = quota
            else:
                self._leases[key] = Lease(granted - 1, asked_at + LEASE_SECONDS, quota, 1)
        return accepted, quota

    async def hit(self, bucket: str, identity: str, limit: Limit) -> tuple[bool, Quota]:
        leased = self.take_leased(bucket, identity)
        if leased is not None:
            return True, leased
        asked_at = time.monotonic()
        row = await self._pool.fetchrow(
            "SELECT * FROM rate_limit_take($1, $2, $3, $4, $5, $6)",
            bucket,
            identity,
            limit.amount,
            limit.seconds,
            self.want(bucket, identity, limit),
            LEASE_SECONDS,
        )
        return self.granted(bucket, identity, limit, asked_at, row)

    async def prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            now = time.monotonic()
            for key in [key for key, lease in self._leases.items() if lease.expires <= now]:
                del self._leases[key]
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


def database_limiter(conn: HTTPConnection) -> PostgresRateLimiter | None:
    """The limiter when hits are counted in PostgreSQL, so a query of the request's own can take
    them (`deps.global_limits` does, with the caller's lookup); None otherwise."""
    limiter = limiter_of(conn)
    return limiter if isinstance(limiter, PostgresRateLimiter) else None


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
