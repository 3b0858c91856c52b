"""SQL of the process tables (`sandbox_processes`, `sandbox_process_output`; written only here).

Output chunks are inserted with their seq as part of the key, so a chunk the agent sends again
after a reconnect is stored once. Each process keeps its newest `keep_bytes` of output at least:
once it holds more than that plus a slack, its oldest chunks beyond the newest `keep_bytes` are
deleted in one statement and `trimmed_through` says where kept output begins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

TRIM_SLACK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    seq: int
    stream: str
    data: bytes
    ts: datetime


@dataclass(frozen=True)
class RunningProcess:
    id: uuid.UUID
    sandbox_id: uuid.UUID
    last_seq: int
    tty: bool


class ProcessStore:
    def __init__(self, pool: asyncpg.Pool, keep_bytes: int, host_id: str) -> None:
        self.pool = pool
        self.keep_bytes = keep_bytes
        self.host_id = host_id  # only this host's sandboxes' processes are this orchestrator's

    async def insert(
        self, process_id: uuid.UUID, sandbox_id: uuid.UUID, owner_id: uuid.UUID, command: list[str], tty: bool
    ) -> bool:
        """The process's row (running); False when it exists already (a repeated create)."""
        inserted = await self.pool.fetchval(
            "INSERT INTO sandbox_processes (id, sandbox_id, owner_id, command, tty)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING true",
            process_id,
            sandbox_id,
            owner_id,
            command,
            tty,
        )
        return bool(inserted)

    async def set_pid(self, process_id: uuid.UUID, pid: int) -> None:
        await self.pool.execute("UPDATE sandbox_processes SET pid = $2 WHERE id = $1", process_id, pid)

    async def delete(self, process_id: uuid.UUID) -> None:
        await self.pool.execute("DELETE FROM sandbox_processes WHERE id = $1", process_id)

    async def get(self, process_id: uuid.UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(
            "SELECT id, sandbox_id, owner_id, tty, status, last_seq FROM sandbox_processes WHERE id = $1",
            process_id,
        )
        return row

    async def running(self) -> list[RunningProcess]:
        rows = await self.pool.fetch(
            "SELECT p.id, p.sandbox_id, p.last_seq, p.tty FROM sandbox_processes p"
            " JOIN sandboxes s ON s.id = p.sandbox_id WHERE p.status = 'running' AND s.host_id = $1",
            self.host_id,
        )
        return [RunningProcess(r["id"], r["sandbox_id"], r["last_seq"], r["tty"]) for r in rows]

    async def running_of_owner(self, owner_id: uuid.UUID) -> int:
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM sandbox_processes WHERE owner_id = $1 AND status = 'running'", owner_id
        )
        return count

    async def append(self, process_id: uuid.UUID, chunks: list[Chunk]) -> int:
        """Store chunks (those stored already are skipped); the process's newest stored seq."""
        async with self.pool.acquire() as conn, conn.transaction():
            added = await conn.fetchval(
                "WITH new AS ("
                " INSERT INTO sandbox_process_output (process_id, seq, stream, data, ts)"
                " SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::bytea[], $5::timestamptz[])"
                " ON CONFLICT (process_id, seq) DO NOTHING RETURNING octet_length(data) AS size)"
                " SELECT coalesce(sum(size), 0) FROM new",
                process_id,
                [c.seq for c in chunks],
                [c.stream for c in chunks],
                [c.data for c in chunks],
                [c.ts for c in chunks],
            )
            row = await conn.fetchrow(
                "UPDATE sandbox_processes SET last_seq = greatest(last_seq, $2),"
                " output_bytes = output_bytes + $3 WHERE id = $1 RETURNING last_seq, output_bytes",
                process_id,
                max(c.seq for c in chunks),
                int(added),
            )
            if row is None:
                return 0
            if row["output_bytes"] > self.keep_bytes + TRIM_SLACK_BYTES:
                await self._trim(conn, process_id)
            last: int = row["last_seq"]
            return last

    async def _trim(self, conn: asyncpg.Connection, process_id: uuid.UUID) -> None:
        """Delete the chunks older than the newest `keep_bytes` (a chunk is kept when the
        output after it is shorter than `keep_bytes`)."""
        cutoff = await conn.fetchrow(
            "SELECT max(seq) AS seq FROM ("
            " SELECT seq, sum(octet_length(data)) OVER (ORDER BY seq DESC) - octet_length(data) AS newer"
            " FROM sandbox_process_output WHERE process_id = $1) t WHERE newer >= $2",
            process_id,
            self.keep_bytes,
        )
        if cutoff is None or cutoff["seq"] is None:
            return
        await conn.execute(
            "DELETE FROM sandbox_process_output WHERE process_id = $1 AND seq <= $2",
            process_id,
            cutoff["seq"],
        )
        await conn.execute(
            "UPDATE sandbox_processes SET trimmed_through = greatest(trimmed_through, $2),"
            " output_bytes = (SELECT coalesce(sum(octet_length(data)), 0) FROM sandbox_process_output"
            " WHERE process_id = $1) WHERE id = $1",
            process_id,
            cutoff["seq"],
        )

    async def end(
        self, process_id: uuid.UUID, status: str, exit_code: int | None, signal: str | None, timed_out: bool
    ) -> bool:
        """Record the end of a running process; False when it had ended already."""
        done = await self.pool.fetchval(
            "UPDATE sandbox_processes SET status = $2, exit_code = $3, signal = $4, timed_out = $5,"
            " ended_at = now() WHERE id = $1 AND status = 'running' RETURNING true",
            process_id,
            status,
            exit_code,
            signal,
            timed_out,
        )
        return bool(done)

    async def prune(self, sandbox_id: uuid.UUID, keep_ended: int) -> None:
        """Drop the output of the sandbox's ended processes past the newest `keep_ended` (the
        ones its list no longer shows), so a long-lived sandbox's store stays bounded."""
        await self.pool.execute(
            "DELETE FROM sandbox_process_output WHERE process_id IN ("
            " SELECT id FROM sandbox_processes WHERE sandbox_id = $1 AND status <> 'running'"
            " ORDER BY started_at DESC, id DESC OFFSET $2)",
            sandbox_id,
            keep_ended,
        )

    async def purge_output(self, sandbox_id: uuid.UUID) -> None:
        """A destroyed sandbox's processes keep their rows, not their output."""
        await self.pool.execute(
            "DELETE FROM sandbox_process_output WHERE process_id IN"
            " (SELECT id FROM sandbox_processes WHERE sandbox_id = $1)",
            sandbox_id,
        )

    async def kill_sandbox(self, sandbox_id: uuid.UUID) -> list[uuid.UUID]:
        """Every running process of the sandbox becomes `killed` (its container stopped or went)."""
        rows = await self.pool.fetch(
            "UPDATE sandbox_processes SET status = 'killed', ended_at = now()"
            " WHERE sandbox_id = $1 AND status = 'running' RETURNING id",
            sandbox_id,
        )
        return [r["id"] for r in rows]
