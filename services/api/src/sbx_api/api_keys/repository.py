"""SQL of the `api_keys` table (written only by the API). Only a hash of each key is stored."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def insert(
    conn: asyncpg.Connection,
    *,
    key_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: str,
    expires_at: datetime | None = None,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO api_keys (id, user_id, name, key_prefix, key_hash, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, key_prefix, created_at, expires_at",
        key_id,
        user_id,
        name,
        prefix,
        key_hash,
        expires_at,
    )
    return row


async def list_active(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """The user's keys that are not revoked, oldest first, after the keyset `after`."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, name, key_prefix, created_at, last_used_at, expires_at FROM api_keys"
        " WHERE user_id = $1 AND revoked_at IS NULL"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))"
        " ORDER BY created_at, id LIMIT $4",
        user_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def revoke(conn: asyncpg.Connection, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Revoke the user's key; False when it is unknown, someone else's, or already revoked."""
    status: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        key_id,
        user_id,
    )
    return status.endswith(" 1")


async def active_with_prefix(conn: asyncpg.Connection, prefix: str) -> list[asyncpg.Record]:
    """Keys not revoked nor expired whose stored prefix is `prefix`, with their hash, last use
    and owner (`user_id`, `email`): the candidates a presented key is checked against."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT k.id, k.key_hash, k.last_used_at, u.id AS user_id, u.email FROM api_keys k"
        " JOIN users u ON u.id = k.user_id WHERE k.key_prefix = $1 AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > now())",
        prefix,
    )
    return rows


async def mark_used(conn: asyncpg.Connection, key_id: uuid.UUID, at: datetime) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", key_id, at)
