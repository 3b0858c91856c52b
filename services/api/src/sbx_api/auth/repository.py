"""SQL of the `users` table (written only by the API)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def insert_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, email: str, password_hash: str
) -> asyncpg.Record:
    """Raises asyncpg.UniqueViolationError when the email (case-insensitive) is taken."""
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)"
        " RETURNING id, email, token_version, created_at",
        user_id,
        email,
        password_hash,
    )
    return row


async def find_by_email(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, email, password_hash, token_version, created_at FROM users"
        " WHERE lower(email) = lower($1)",
        email,
    )
    return row


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, email, created_at FROM users WHERE id = $1", user_id
    )
    return row


async def token_owner(conn: asyncpg.Connection, user_id: uuid.UUID, jti: str) -> asyncpg.Record | None:
    """The user a JWT names, with its token version and whether the token was revoked by a
    logout: one round trip, two primary-key lookups (the auth path runs on every request)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT u.id, u.email, u.token_version,"
        " EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2) AS revoked"
        " FROM users u WHERE u.id = $1",
        user_id,
        jti,
    )
    return row


async def token_owner_counted(
    conn: asyncpg.Connection,
    claims: tuple[uuid.UUID, str, int],
    bucket: str,
    limit: tuple[int, float],
) -> asyncpg.Record | None:
    """`token_owner`, and in the same round trip one hit on the user's rate limit (`bucket`,
    identity `user:<id>`, `limit` = (amount, seconds)), made only when the token is still good
    (its version is the user's and it is not revoked): a refused token never spends its user's
    budget. `accepted`, `used`, `oldest_leaves`, `newest_leaves` are NULL when no hit was made.

    The condition is in the function's arguments, not in a WHERE the planner may move after the
    call: `rate_limit_hit` is STRICT, and a NULL bucket makes PostgreSQL skip it altogether."""
    user_id, jti, version = claims
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT u.id, u.email, u.token_version, t.revoked,"
        " h.accepted, h.used, h.oldest_leaves, h.newest_leaves"
        " FROM users u"
        " CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2) AS revoked) t"
        " LEFT JOIN LATERAL rate_limit_hit("
        "   CASE WHEN u.token_version = $3 AND NOT t.revoked THEN $4::text END, 'user:' || u.id::text, $5, $6"
        " ) h ON true"
        " WHERE u.id = $1",
        user_id,
        jti,
        version,
        bucket,
        limit[0],
        limit[1],
    )
    return row


async def find_by_id(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The user with its password hash and token version (for a password change)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, email, password_hash, token_version, created_at FROM users WHERE id = $1 FOR UPDATE",
        user_id,
    )
    return row


async def set_password(conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str) -> asyncpg.Record:
    """Store the new hash and bump the token version, so every JWT issued before is refused."""
    row: asyncpg.Record = await conn.fetchrow(
        "UPDATE users SET password_hash = $2, token_version = token_version + 1 WHERE id = $1"
        " RETURNING id, email, token_version, created_at",
        user_id,
        password_hash,
    )
    return row


async def revoke_token(conn: asyncpg.Connection, jti: str, expires_at: datetime) -> None:
    """Revoke one JWT until it would have expired anyway, and prune the revocations that are past
    that point (they can no longer matter)."""
    await conn.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        jti,
        expires_at,
    )
    await conn.execute("DELETE FROM revoked_tokens WHERE expires_at < now()")
