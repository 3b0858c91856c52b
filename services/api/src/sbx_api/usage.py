"""Per-user caps on what a user holds open at once: execs under way, terminal sessions, and event
and log streams (SSE and WebSockets). Over a cap an HTTP route answers 429 `QUOTA_EXCEEDED` with
`details.limit` and `details.current`, and a socket closes with 4029.

The counts live behind `UsageCounter`. `LocalUsage` counts in this process: exact for one API
process, and per process when the API runs several (each enforces the cap on what it serves).
A shared store (PostgreSQL rows, a NATS KV) plugs in behind the same interface.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, Protocol

from sbx_common.errors import QuotaExceeded


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
