"""Rate limits, counted by the `limits` library in the storage `SBX_RATE_LIMIT_STORAGE` names.

`memory://` (the default) counts in this process; `redis://host:6379` shares the counters
between API instances (it needs the `redis` package installed beside `limits`). The strategy is
a moving window, so `Retry-After` is exact: once it has passed, the next request is accepted.

Any route can add a limit of its own with `enforce`, for example (sandbox creation):

    await ratelimit.enforce(request, "sandbox-create", str(caller.user_id),
                            ratelimit.per_minutes(settings.sandbox_create_rate_limit))

Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
(seconds) of the most constraining limit the request went through; a refused request raises
`RateLimited` (429, `Retry-After`, `details.retryAfter`). Counting failures (storage down) let
the request through and log a warning: the limits protect the platform, they must not stop it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sbx_common.errors import RateLimited
from starlette.requests import HTTPConnection

logger = logging.getLogger(__name__)

# Where `enforce` leaves the headers for the middleware that writes them on the response.
RESPONSE_HEADERS_KEY = "sbx_rate_limit_headers"


def per_minutes(amount: int, minutes: int = 1) -> RateLimitItem:
    """`amount` requests per `minutes` minutes."""
    return RateLimitItemPerMinute(amount, minutes)


@dataclass(frozen=True)
class Quota:
    """Where a caller stands against one limit after a hit."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimiter:
    """Counts hits per (bucket, identity) in a moving window."""

    def __init__(self, storage_uri: str) -> None:
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        storage = storage_from_string(uri)
        assert isinstance(storage, Storage)
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)

    async def hit(self, bucket: str, identity: str, limit: RateLimitItem) -> tuple[bool, Quota]:
        """Count one request; (accepted, where the caller now stands)."""
        accepted = await self._strategy.hit(limit, bucket, identity)
        stats = await self._strategy.get_window_stats(limit, bucket, identity)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return accepted, Quota(limit=limit.amount, remaining=max(0, stats.remaining), reset_seconds=reset)

    async def reset(self) -> None:
        await self._storage.reset()


def limiter_of(conn: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = conn.app.state.sbx.limiter
    return limiter


def client_ip(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client is not None else "unknown"


async def enforce(conn: HTTPConnection, bucket: str, identity: str, limit: RateLimitItem) -> None:
    """Count this request against `limit` for `identity` in `bucket`; raise RateLimited when over.

    `bucket` names the limit ("global", "auth", "sandbox-create"...), `identity` whom it counts
    (a user id, or an IP before authentication). Sets the RateLimit-* headers either way.
    """
    try:
        accepted, quota = await limiter_of(conn).hit(bucket, identity, limit)
    except Exception:
        logger.warning("rate limit storage unavailable; request let through", exc_info=True)
        return
    state = conn.scope.setdefault("state", {})
    current: Quota | None = state.get(RESPONSE_HEADERS_KEY)
    if not accepted or current is None or quota.remaining < current.remaining:
        state[RESPONSE_HEADERS_KEY] = quota
    if not accepted:
        raise RateLimited(retry_after=quota.reset_seconds)


def response_headers(scope_state: dict[str, object]) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers `enforce` chose for this request (none if it was not limited)."""
    quota = scope_state.get(RESPONSE_HEADERS_KEY)
    if not isinstance(quota, Quota):
        return []
    return [(k.lower().encode(), v.encode()) for k, v in quota.headers().items()]
