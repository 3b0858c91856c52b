"""Reads of the process tables (written by the orchestrator only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_COLUMNS = (
    "id, sandbox_id, command, pid, tty, status, exit_code, signal, started_at, ended_at,"
    " last_seq, trimmed_through"
)
ENDED_LISTED = 100


@dataclass(frozen=True)
class ProcessRow:
    id: uuid.UUID
    sandbox_id: uuid.UUID
    command: list[str]
    pid: int | None
    tty: bool
    status: str
    exit_code: int | None
    signal: str | None
    started_at: datetime
    ended_at: datetime | None
    last_seq: int
    trimmed_through: int


@dataclass(frozen=True)
class StoredChunk:
    seq: int
    stream: str
    data: bytes
    ts: datetime


def _row(record: asyncpg.Record) -> ProcessRow:
    return ProcessRow(**dict(record))


async def get_process(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID, process_id: uuid.UUID
) -> ProcessRow | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM sandbox_processes"  # noqa: S608 (constant column list)
        " WHERE id = $1 AND sandbox_id = $2 AND owner_id = $3",
        process_id,
        sandbox_id,
        owner_id,
    )
    return _row(record) if record is not None else None


async def list_processes(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID, status: str | None
) -> list[ProcessRow]:
    """The running processes and the newest ENDED_LISTED ended ones, newest first."""
    records = await conn.fetch(
        f"(SELECT {_COLUMNS} FROM sandbox_processes"  # noqa: S608 (constant column list)
        " WHERE sandbox_id = $1 AND owner_id = $2 AND status = 'running')"
        f" UNION ALL (SELECT {_COLUMNS} FROM sandbox_processes"
        " WHERE sandbox_id = $1 AND owner_id = $2 AND status <> 'running'"
        " ORDER BY started_at DESC, id DESC LIMIT $3)"
        " ORDER BY started_at DESC, id DESC",
        sandbox_id,
        owner_id,
        ENDED_LISTED,
    )
    rows = [_row(r) for r in records]
    return [r for r in rows if status is None or r.status == status]


async def output(
    conn: asyncpg.Connection, process_id: uuid.UUID, since: int, limit: int
) -> list[StoredChunk]:
    records = await conn.fetch(
        "SELECT seq, stream, data, ts FROM sandbox_process_output"
        " WHERE process_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        process_id,
        since,
        limit,
    )
    return [StoredChunk(r["seq"], r["stream"], bytes(r["data"]), r["ts"]) for r in records]
