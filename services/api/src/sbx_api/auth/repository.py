"""SQL of the `users` table (written only by the API)."""

from __future__ import annotations

import uuid

import asyncpg


async def insert_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, email: str, password_hash: str
) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the email (case-insensitive) is taken."""
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) RETURNING id, email, created_at",
        user_id,
        email,
        password_hash,
    )
    return row


async def find_by_email(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, email, password_hash, created_at FROM users WHERE lower(email) = lower($1)", email
    )
    return row


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, email, created_at FROM users WHERE id = $1", user_id
    )
    return row
