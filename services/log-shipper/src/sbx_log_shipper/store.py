"""PostgreSQL side of the log shipper: `sandbox_logs` (bounded per sandbox) and `log_cursors`.

Lines and the cursor move in one transaction, so after a crash the cursor names exactly the
last stored line. Resuming asks Docker for the lines since the cursor's timestamp (to the
microsecond) and skips as many as are already stored at or after that instant: Docker's
`since` is inclusive, and several lines can carry the same timestamp (the pieces of a split
line always do).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sbx_log_shipper.frames import StreamName, docker_since

COLUMNS = ("sandbox_id", "seq", "stream", "text", "ts")
Record = tuple[uuid.UUID, int, StreamName, str, datetime]


@dataclass(frozen=True)
class ResumePoint:
    next_seq: int
    since: str | None  # Docker's `since` parameter, None to read from the start
    skip: int  # lines Docker will send again that are already stored


class LogStore:
    def __init__(self, pool: asyncpg.Pool, retention_lines: int) -> None:
        self.pool = pool
        self.retention_lines = retention_lines
        # Delete old lines once this many more than the retention have accumulated, so that
        # pruning is one range delete per `prune_slack` lines rather than one per line.
        self.prune_slack = max(100, retention_lines // 10)

    async def resume_point(self, sandbox_id: uuid.UUID) -> ResumePoint:
        async with self.pool.acquire() as conn:
            cursor = await conn.fetchrow(
                "SELECT last_seq, last_ts FROM log_cursors WHERE sandbox_id = $1", sandbox_id
            )
            if cursor is None:
                return ResumePoint(next_seq=1, since=None, skip=0)
            since: datetime = cursor["last_ts"]
            skip = await conn.fetchval(
                "SELECT count(*) FROM sandbox_logs WHERE sandbox_id = $1 AND ts >= $2", sandbox_id, since
            )
        return ResumePoint(next_seq=cursor["last_seq"] + 1, since=docker_since(since), skip=int(skip))

    async def last_seq(self, sandbox_id: uuid.UUID) -> int:
        async with self.pool.acquire() as conn:
            value = await conn.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1", sandbox_id)
        return int(value or 0)

    async def append(self, sandbox_id: uuid.UUID, records: list[Record], last_ts_raw: str) -> None:
        """Store consecutive lines and move the cursor to the last of them, atomically."""
        last = records[-1]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("sandbox_logs", records=records, columns=COLUMNS)
            await conn.execute(
                "INSERT INTO log_cursors (sandbox_id, last_seq, last_ts, last_ts_raw, updated_at)"
                " VALUES ($1, $2, $3, $4, now())"
                " ON CONFLICT (sandbox_id) DO UPDATE SET last_seq = EXCLUDED.last_seq,"
                " last_ts = EXCLUDED.last_ts, last_ts_raw = EXCLUDED.last_ts_raw, updated_at = now()",
                sandbox_id,
                last[1],
                last[4],
                last_ts_raw,
            )

    async def prune(self, sandbox_id: uuid.UUID, last_seq: int) -> None:
        """Keep the newest `retention_lines` lines of the sandbox."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM sandbox_logs WHERE sandbox_id = $1 AND seq <= $2",
                sandbox_id,
                last_seq - self.retention_lines,
            )
