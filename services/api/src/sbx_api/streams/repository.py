"""Reads of the streams domain: a sandbox's owner and status, and its stored log lines.

`log_lines` is the one reader of `sandbox_logs` (written by the log shipper): the REST logs
route and the logs socket's past and catch-up reads all go through it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_LINES_AFTER = (
    "SELECT seq, stream, text, ts FROM sandbox_logs WHERE sandbox_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
)
_NEWEST_LINES = (
    "SELECT seq, stream, text, ts FROM sandbox_logs WHERE sandbox_id = $1 ORDER BY seq DESC LIMIT $2"
)


@dataclass(frozen=True)
class StoredLine:
    """One stored log line; `seq` numbers a sandbox's lines from 1 without gaps."""

    seq: int
    stream: str
    text: str
    ts: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredLine:
        return cls(seq=row["seq"], stream=row["stream"], text=row["text"], ts=row["ts"])


async def sandbox_status(conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID) -> str | None:
    """The status the owner sees, or None when there is no such sandbox of that owner."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM sandbox_view WHERE id = $1 AND owner_id = $2", sandbox_id, owner_id
    )
    return status


async def log_lines(
    conn: asyncpg.Connection,
    sandbox_id: uuid.UUID,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> list[StoredLine]:
    """Lines with `seq > after`, oldest first, at most `limit` (None: all). With `after`, the
    first of them, so a reader pages forward without gaps; without it, the newest."""
    if after is not None:
        rows = await conn.fetch(_LINES_AFTER, sandbox_id, after, limit)
    else:
        rows = reversed(await conn.fetch(_NEWEST_LINES, sandbox_id, limit))
    return [StoredLine.from_row(row) for row in rows]


async def last_seq(conn: asyncpg.Connection, sandbox_id: uuid.UUID) -> int:
    value = await conn.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1", sandbox_id)
    return int(value or 0)
