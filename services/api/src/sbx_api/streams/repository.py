"""Reads of the streams domain: a sandbox's owner and status, and its stored log lines."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def sandbox_status(conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID) -> str | None:
    """The status the owner sees, or None when there is no such sandbox of that owner."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM sandbox_view WHERE id = $1 AND owner_id = $2", sandbox_id, owner_id
    )
    return status


async def newest_lines(conn: asyncpg.Connection, sandbox_id: uuid.UUID, tail: int) -> list[Any]:
    """The newest `tail` lines, oldest first."""
    rows = await conn.fetch(
        "SELECT seq, stream, text, ts FROM sandbox_logs WHERE sandbox_id = $1 ORDER BY seq DESC LIMIT $2",
        sandbox_id,
        tail,
    )
    return list(reversed(rows))


async def lines_between(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, after: int, before: int | None = None
) -> list[Any]:
    """Lines with `after < seq < before` (no upper bound when `before` is None), oldest first."""
    return list(
        await conn.fetch(
            "SELECT seq, stream, text, ts FROM sandbox_logs"
            " WHERE sandbox_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq < $3) ORDER BY seq",
            sandbox_id,
            after,
            before,
        )
    )


async def last_seq(conn: asyncpg.Connection, sandbox_id: uuid.UUID) -> int:
    value = await conn.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1", sandbox_id)
    return int(value or 0)
