"""PostgreSQL side of the log shipper: `sandbox_logs` (bounded per sandbox) and `log_cursors`.

Lines and the cursor move in one transaction, so after a crash the cursor names exactly the
last stored line. Resuming cannot ask Docker for the lines since that line's timestamp: stdout
and stderr are stamped by two goroutines, so a line after it in Docker's log file can carry an
earlier timestamp, and Docker's `since` would drop it. Resuming therefore asks Docker for the
lines since a little earlier (RESUME_MARGIN) and skips, one by one, the stored lines Docker
sends again: `since` keeps every line at or after it, in file order, and the stored lines are
the start of the file, so Docker sends exactly the stored lines stamped at or after `since`, in
`seq` order, before any new line.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from sbx_log_shipper.frames import StreamName, docker_since

COLUMNS = ("sandbox_id", "seq", "stream", "text", "ts")
Record = tuple[uuid.UUID, int, StreamName, str, datetime]
# A stored line as resuming compares it: timestamp, stream and a digest of the text (the text
# itself could be megabytes for a whole margin's worth of long lines).
LineKey = tuple[datetime, str, str]
# Far more than Docker's two stream goroutines ever stamp lines out of order (milliseconds).
RESUME_MARGIN = timedelta(seconds=1)
# Batches of at least this many lines are stored with COPY, smaller ones with one statement.
# Measured here (PostgreSQL's CPU, the shipper's, wall time per line): at 60 lines a batch the
# one statement costs 2.7-3.1 / 2.3-2.8 / 9-15 us against COPY's 3.9-5.2 / 4.2-6.2 / 16-57 us
# (COPY's transaction is five round trips: BEGIN, COPY and its data, the cursor, COMMIT); at
# 2,000 lines COPY is 15-20% cheaper.
COPY_FROM_LINES = 500

_MOVE_CURSOR = (
    "INSERT INTO log_cursors (sandbox_id, last_seq, last_ts, last_ts_raw, updated_at)"
    " VALUES ($1, $2, $3, $4, now())"
    " ON CONFLICT (sandbox_id) DO UPDATE SET last_seq = EXCLUDED.last_seq,"
    " last_ts = EXCLUDED.last_ts, last_ts_raw = EXCLUDED.last_ts_raw, updated_at = now()"
)
# The lines and the cursor in one statement: one round trip, atomic by itself.
_STORE_AND_MOVE_CURSOR = (
    "WITH stored AS (INSERT INTO sandbox_logs (sandbox_id, seq, stream, text, ts)"
    " SELECT $1, * FROM unnest($5::bigint[], $6::text[], $7::text[], $8::timestamptz[]))"
    " INSERT INTO log_cursors (sandbox_id, last_seq, last_ts, last_ts_raw, updated_at)"
    " VALUES ($1, $2, $3, $4, now())"
    " ON CONFLICT (sandbox_id) DO UPDATE SET last_seq = EXCLUDED.last_seq,"
    " last_ts = EXCLUDED.last_ts, last_ts_raw = EXCLUDED.last_ts_raw, updated_at = now()"
)


def line_key(ts: datetime, stream: str, text: str) -> LineKey:
    return (ts, stream, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())


@dataclass(frozen=True)
class ResumePoint:
    next_seq: int
    since: str | None  # Docker's `since` parameter, None to read from the start
    stored: list[LineKey] = field(default_factory=list)  # what Docker sends again, in order


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
                return ResumePoint(next_seq=1, since=None)
            last_ts: datetime = cursor["last_ts"]
            since = last_ts - RESUME_MARGIN
            oldest = await conn.fetchrow(
                "SELECT seq, ts FROM sandbox_logs WHERE sandbox_id = $1 ORDER BY seq LIMIT 1", sandbox_id
            )
            if oldest is not None and oldest["seq"] > 1:
                # Old lines were pruned: Docker would send again the pruned ones stamped after
                # `since`, which cannot be recognised. Stay clear of the oldest kept line.
                since = max(since, oldest["ts"] + (last_ts - oldest["ts"]) / 2)
            # `since` has whole microseconds, as stored timestamps do: `ts >= since` here is
            # exactly Docker's test on its nanosecond timestamps.
            rows = await conn.fetch(
                "SELECT ts, stream, md5(text) AS digest FROM sandbox_logs"
                " WHERE sandbox_id = $1 AND ts >= $2 ORDER BY seq",
                sandbox_id,
                since,
            )
        return ResumePoint(
            next_seq=cursor["last_seq"] + 1,
            since=docker_since(since),
            stored=[(row["ts"], row["stream"], row["digest"]) for row in rows],
        )

    async def last_seq(self, sandbox_id: uuid.UUID) -> int:
        async with self.pool.acquire() as conn:
            value = await conn.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1", sandbox_id)
        return int(value or 0)

    async def append(self, sandbox_id: uuid.UUID, records: list[Record], last_ts_raw: str) -> None:
        """Store consecutive lines and move the cursor to the last of them, atomically."""
        last = records[-1]
        cursor = (sandbox_id, last[1], last[4], last_ts_raw)
        async with self.pool.acquire() as conn:
            if len(records) < COPY_FROM_LINES:
                _ids, seqs, streams, texts, stamps = zip(*records, strict=True)
                await conn.execute(_STORE_AND_MOVE_CURSOR, *cursor, seqs, streams, texts, stamps)
                return
            async with conn.transaction():
                await conn.copy_records_to_table("sandbox_logs", records=records, columns=COLUMNS)
                await conn.execute(_MOVE_CURSOR, *cursor)

    async def prune(self, sandbox_id: uuid.UUID, last_seq: int) -> None:
        """Keep the newest `retention_lines` lines of the sandbox."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM sandbox_logs WHERE sandbox_id = $1 AND seq <= $2",
                sandbox_id,
                last_seq - self.retention_lines,
            )

    async def forget_destroyed(self, older_than_days: float) -> int:
        """Delete the lines and cursors of sandboxes destroyed (or expired) that long ago."""
        async with self.pool.acquire() as conn, conn.transaction():
            gone = await conn.fetch(
                "SELECT c.sandbox_id FROM log_cursors c JOIN sandbox_runtime r ON r.sandbox_id = c.sandbox_id"
                " WHERE r.status IN ('destroyed', 'expired')"
                " AND r.destroyed_at < now() - make_interval(secs => $1)",
                older_than_days * 86400,
            )
            ids = [row["sandbox_id"] for row in gone]
            if ids:
                await conn.execute("DELETE FROM sandbox_logs WHERE sandbox_id = ANY($1::uuid[])", ids)
                await conn.execute("DELETE FROM log_cursors WHERE sandbox_id = ANY($1::uuid[])", ids)
        return len(ids)
