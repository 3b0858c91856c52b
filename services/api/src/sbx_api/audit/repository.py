"""SQL of the audit trail (table `audit_events`, written only by the API)."""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import asyncpg

# A connection (to join its transaction) or the pool (for a write of its own).
Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def insert(
    db: Executor,
    *,
    user_id: uuid.UUID | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    outcome: str,
    trace_id: str | None,
    details: dict[str, Any],
) -> None:
    await db.execute(
        "INSERT INTO audit_events (user_id, action, target_type, target_id, outcome, trace_id, details)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        user_id,
        action,
        target_type,
        target_id,
        outcome,
        trace_id,
        details,
    )


async def list_for_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, before_id: int | None, limit: int
) -> list[asyncpg.Record]:
    """The user's events, newest first, starting below `before_id` (keyset pagination)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, action, target_type, target_id, outcome, trace_id, details, occurred_at"
        " FROM audit_events WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)"
        " ORDER BY id DESC LIMIT $3",
        user_id,
        before_id,
        limit,
    )
    return rows
