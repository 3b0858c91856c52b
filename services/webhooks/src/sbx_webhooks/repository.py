"""SQL of the webhooks service: reads `webhooks` (the API's) and writes `webhook_deliveries` and
`webhook_delivery_attempts` (its own)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def matching_webhooks(
    conn: asyncpg.Connection, owner_id: uuid.UUID, event_type: str
) -> list[uuid.UUID]:
    """The owner's webhooks (not deleted) that asked for `event_type`, directly or by `sandbox.*`."""
    rows = await conn.fetch(
        "SELECT id FROM webhooks WHERE owner_id = $1 AND deleted_at IS NULL"
        " AND (events @> ARRAY['sandbox.*'] OR events @> ARRAY[$2::text])",
        owner_id,
        event_type,
    )
    return [r["id"] for r in rows]


async def record(conn: asyncpg.Connection, webhook_ids: list[uuid.UUID], event_id: str, body: bytes) -> int:
    """One pending delivery per webhook; an event seen again (redelivered) adds none."""
    rows = await conn.fetch(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, body, status)"
        " SELECT gen_random_uuid(), w, $2, $3, 'pending' FROM unnest($1::uuid[]) AS w"
        " ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING id",
        webhook_ids,
        event_id,
        body,
    )
    return len(rows)


async def claim_due(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The next due delivery, locked for this transaction (others skip it), with its webhook.
    A crash releases the lock with the connection, and the delivery is due again at once."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT d.id, d.webhook_id, d.event_id, d.body, d.attempts, d.created_at,"
        " w.url, w.key_id, w.nonce, w.ciphertext, w.deleted_at"
        " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= now()"
        " ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
    )
    return row


async def record_attempt(
    conn: asyncpg.Connection,
    delivery_id: uuid.UUID,
    *,
    attempt: int,
    response_status: int | None,
    error: str | None,
    duration_ms: int,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    await conn.execute(
        "INSERT INTO webhook_delivery_attempts (delivery_id, attempt, response_status, error, duration_ms)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        delivery_id,
        attempt,
        response_status,
        error,
        duration_ms,
    )
    await conn.execute(
        "UPDATE webhook_deliveries SET status = $2, attempts = $3, response_status = $4,"
        " last_attempt_at = now(), next_attempt_at = COALESCE($5, next_attempt_at) WHERE id = $1",
        delivery_id,
        status,
        attempt,
        response_status,
        next_attempt_at,
    )


async def give_up(conn: asyncpg.Connection, delivery_id: uuid.UUID) -> None:
    """A delivery whose webhook was deleted: never attempted again."""
    await conn.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1", delivery_id)
