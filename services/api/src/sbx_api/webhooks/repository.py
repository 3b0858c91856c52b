"""SQL of the `webhooks` table (written only by the API) and reads of `webhook_deliveries`
(written only by the webhooks service)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from sbx_common.crypto import SealedSecret


async def lock_owner(conn: asyncpg.Connection, owner_id: uuid.UUID) -> None:
    """Serialise the owner's webhook creations until the transaction ends (quota check)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('sbx-webhook-quota:' || $1::uuid::text, 0))",
        owner_id,
    )


async def count_active(conn: asyncpg.Connection, owner_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM webhooks WHERE owner_id = $1 AND deleted_at IS NULL", owner_id
    )
    return count


async def insert(
    conn: asyncpg.Connection,
    *,
    webhook_id: uuid.UUID,
    owner_id: uuid.UUID,
    url: str,
    events: list[str],
    description: str | None,
    sealed: SealedSecret,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO webhooks (id, owner_id, url, events, description, key_id, nonce, ciphertext)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, url, events, description, created_at",
        webhook_id,
        owner_id,
        url,
        events,
        description,
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
    )
    return row


async def list_active(
    conn: asyncpg.Connection, owner_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, url, events, description, created_at FROM webhooks"
        " WHERE owner_id = $1 AND deleted_at IS NULL"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))"
        " ORDER BY created_at, id LIMIT $4",
        owner_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def exists(conn: asyncpg.Connection, owner_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL)",
        webhook_id,
        owner_id,
    )
    return found


async def mark_deleted(conn: asyncpg.Connection, owner_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    """Delete the owner's webhook (no delivery is made for it from now on); False when it is
    unknown, someone else's, or already deleted."""
    status: str = await conn.execute(
        "UPDATE webhooks SET deleted_at = now() WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL",
        webhook_id,
        owner_id,
    )
    return status.endswith(" 1")


async def list_deliveries(
    conn: asyncpg.Connection,
    webhook_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, event_id, status, attempts, response_status, last_attempt_at, created_at"
        " FROM webhook_deliveries WHERE webhook_id = $1"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))"
        " ORDER BY created_at, id LIMIT $4",
        webhook_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows
