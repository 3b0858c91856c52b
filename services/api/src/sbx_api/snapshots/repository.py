"""SQL of the snapshots domain. The API writes `snapshots`; the orchestrator writes
`snapshot_runtime` (status, size), read here through a join."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_SELECT = """
SELECT p.id, p.owner_id, p.sandbox_id, p.environment_id, p.environment_version, p.name, p.hidden,
       p.created_at, p.deleted_at, COALESCE(r.status, 'creating') AS status, r.status_reason,
       COALESCE(r.size_bytes, 0) AS size_bytes, p.host_id
FROM snapshots p
LEFT JOIN snapshot_runtime r ON r.snapshot_id = p.id
"""


@dataclass(frozen=True)
class SnapshotRow:
    id: uuid.UUID
    owner_id: uuid.UUID
    sandbox_id: uuid.UUID
    environment_id: uuid.UUID
    environment_version: int
    name: str
    hidden: bool
    created_at: datetime
    deleted_at: datetime | None
    status: str
    status_reason: str | None
    size_bytes: int
    host_id: str  # where its image is: the host of the sandbox it was taken of


@dataclass(frozen=True)
class NewSnapshot:
    id: uuid.UUID
    owner_id: uuid.UUID
    sandbox_id: uuid.UUID
    environment_id: uuid.UUID
    environment_version: int
    name: str
    command_id: uuid.UUID
    hidden: bool = False


async def get(
    conn: asyncpg.Connection, snapshot_id: uuid.UUID, owner_id: uuid.UUID, *, lock: bool = False
) -> SnapshotRow | None:
    """The owner's visible snapshot (not hidden, not deleted); `lock` keeps it from being
    deleted (FOR SHARE) until the transaction ends."""
    if lock:
        found = await conn.fetchval(
            "SELECT true FROM snapshots WHERE id = $1 AND owner_id = $2 AND NOT hidden"
            " AND deleted_at IS NULL FOR SHARE",
            snapshot_id,
            owner_id,
        )
        if not found:
            return None
    row = await conn.fetchrow(
        _SELECT + " WHERE p.id = $1 AND p.owner_id = $2 AND NOT p.hidden AND p.deleted_at IS NULL",
        snapshot_id,
        owner_id,
    )
    return SnapshotRow(**dict(row)) if row is not None else None


async def lock_for_delete(conn: asyncpg.Connection, snapshot_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM snapshots WHERE id = $1 AND owner_id = $2 AND NOT hidden AND deleted_at IS NULL"
        " FOR UPDATE",
        snapshot_id,
        owner_id,
    )
    return bool(found)


async def list_page(
    conn: asyncpg.Connection,
    owner_id: uuid.UUID,
    sandbox_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[SnapshotRow]:
    rows = await conn.fetch(
        _SELECT
        + """
WHERE p.owner_id = $1 AND NOT p.hidden AND p.deleted_at IS NULL
  AND ($2::uuid IS NULL OR p.sandbox_id = $2)
  AND ($3::timestamptz IS NULL OR (p.created_at, p.id) < ($3::timestamptz, $4::uuid))
ORDER BY p.created_at DESC, p.id DESC
LIMIT $5""",
        owner_id,
        sandbox_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [SnapshotRow(**dict(r)) for r in rows]


async def count(conn: asyncpg.Connection, owner_id: uuid.UUID) -> int:
    """The user's snapshots that count against the quota (visible and not deleted)."""
    n: int = await conn.fetchval(
        "SELECT count(*) FROM snapshots WHERE owner_id = $1 AND NOT hidden AND deleted_at IS NULL", owner_id
    )
    return n


async def insert(conn: asyncpg.Connection, s: NewSnapshot) -> None:
    await conn.execute(
        "INSERT INTO snapshots (id, owner_id, sandbox_id, environment_id, environment_version, name,"
        " hidden, command_id, host_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT host_id FROM sandboxes WHERE id = $3))",
        s.id,
        s.owner_id,
        s.sandbox_id,
        s.environment_id,
        s.environment_version,
        s.name,
        s.hidden,
        s.command_id,
    )


async def withdraw(conn: asyncpg.Connection, snapshot_id: uuid.UUID) -> bool:
    """Remove a snapshot whose command could not be published, unless the orchestrator took
    it up after all. True when it was removed."""
    deleted = await conn.fetchval(
        "DELETE FROM snapshots p WHERE p.id = $1"
        " AND NOT EXISTS (SELECT 1 FROM snapshot_runtime r WHERE r.snapshot_id = $1) RETURNING true",
        snapshot_id,
    )
    return bool(deleted)


async def in_use(conn: asyncpg.Connection, snapshot_id: uuid.UUID) -> list[uuid.UUID]:
    """Sandboxes made from the snapshot that are not destroyed or expired."""
    rows = await conn.fetch(
        "SELECT s.id FROM sandboxes s JOIN sandbox_view v ON v.id = s.id"
        " WHERE s.snapshot_id = $1 AND v.status NOT IN ('destroyed', 'expired')",
        snapshot_id,
    )
    return [r["id"] for r in rows]


async def mark_deleted(conn: asyncpg.Connection, snapshot_id: uuid.UUID, deleted: bool) -> None:
    await conn.execute(
        "UPDATE snapshots SET deleted_at = CASE WHEN $2 THEN now() END WHERE id = $1", snapshot_id, deleted
    )
