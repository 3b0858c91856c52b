"""SQL of the `users` table (written only by the API)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CallerQuery:
    """A SELECT of at most one row: the caller its credentials name, and one hit on the caller's
    rate limit made in the same statement, so that authenticating and counting a request is one
    round trip, and a route may add its own read to it (`sandboxes.repository.get_sandbox_as`).

    Columns: `caller_id`, `caller_email`, `caller_key_id` (NULL for a JWT), `caller_ok` (false
    for a JWT issued before the last password change or revoked by a logout), then
    `rate_limit_hit`'s `accepted`, `used`, `oldest_leaves`, `newest_leaves`, NULL when no hit was
    made: only credentials still good spend their user's budget. No row: no such user or key.

    Conditions sit in the function's arguments, not in a WHERE the planner may move after the
    call: `rate_limit_hit` is STRICT, and a NULL bucket makes PostgreSQL skip it altogether."""

    select: str
    args: tuple[object, ...]
    # Statements the SELECT needs at the top of the statement (PostgreSQL allows a WITH that
    # writes only there): `<name> AS (...)`, or "".
    with_: str = ""

    @property
    def sql(self) -> str:
        return ("WITH " + self.with_ + " " if self.with_ else "") + self.select


def jwt_caller_counted(
    claims: tuple[uuid.UUID, str, int], bucket: str, limit: tuple[int, float]
) -> CallerQuery:
    """The user of a JWT whose signature checked out (`claims` = user id, token id, version)."""
    user_id, jti, version = claims
    return CallerQuery(
        "SELECT u.id AS caller_id, u.email AS caller_email, NULL::uuid AS caller_key_id,"
        " (u.token_version = $3 AND NOT t.revoked) AS caller_ok,"
        " h.accepted, h.used, h.oldest_leaves, h.newest_leaves"
        " FROM users u"
        " CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2) AS revoked) t"
        " LEFT JOIN LATERAL rate_limit_hit("
        "   CASE WHEN u.token_version = $3 AND NOT t.revoked THEN $4::text END, 'user:' || u.id::text, $5, $6"
        " ) h ON true"
        " WHERE u.id = $1",
        (user_id, jti, version, bucket, limit[0], limit[1]),
    )


def key_caller_counted(
    key: tuple[str, str], bucket: str, limit: tuple[int, float], last_used_resolution: float
) -> CallerQuery:
    """The owner of an API key (`key` = its stored prefix, the SHA-256 of the whole key) that is
    neither revoked nor expired. The key's `last_used_at` is written by the same statement when
    it is older than `last_used_resolution` seconds, so a hot key does not write on every
    request. The key has 256 random bits: looking its hash up is as safe as comparing it."""
    prefix, key_hash = key
    return CallerQuery(
        "SELECT u.id AS caller_id, u.email AS caller_email, k.id AS caller_key_id, true AS caller_ok,"
        " h.accepted, h.used, h.oldest_leaves, h.newest_leaves"
        " FROM presented k JOIN users u ON u.id = k.user_id"
        " LEFT JOIN LATERAL rate_limit_hit($3::text, 'user:' || u.id::text, $4, $5) h ON true",
        (prefix, key_hash, bucket, limit[0], limit[1], last_used_resolution),
        "presented AS ("
        "   SELECT k.id, k.user_id, k.last_used_at FROM api_keys k"
        "   WHERE k.key_prefix = $1 AND k.key_hash = $2 AND k.revoked_at IS NULL"
        "     AND (k.expires_at IS NULL OR k.expires_at > now())"
        " ), presented_used AS ("
        "   UPDATE api_keys a SET last_used_at = now() FROM presented k WHERE a.id = k.id"
        "     AND (k.last_used_at IS NULL OR k.last_used_at < now() - make_interval(secs => $6))"
        " )",
    )


def known_caller(user_id: uuid.UUID) -> CallerQuery:
    """A caller already authenticated and counted, in `CallerQuery`'s columns, so that a read
    written for `joined` serves both kinds of caller."""
    return CallerQuery(
        "SELECT $1::uuid AS caller_id, NULL::text AS caller_email, NULL::uuid AS caller_key_id,"
        " true AS caller_ok, true AS accepted, NULL::bigint AS used,"
        " NULL::double precision AS oldest_leaves, NULL::double precision AS newest_leaves",
        (user_id,),
    )


_PARAMETER = re.compile(r"\$(\d+)")


def joined(caller: CallerQuery, read: str) -> str:
    """One statement: the caller's row (`c`, the columns of `CallerQuery`), followed by the
    rows of `read` when the caller is let in (credentials good, hit accepted); a caller refused
    gets one row with `read`'s columns NULL, and so does a caller let in whom `read` finds
    nothing for. `read` is a SELECT that names the caller's id `c.caller_id`, numbers its
    parameters from $1 (they follow the caller's, in order), and has no column named as one of
    `CallerQuery`'s."""
    shift = len(caller.args)
    read = _PARAMETER.sub(lambda m: f"${int(m.group(1)) + shift}", read)
    return (
        "WITH "  # noqa: S608 (every part is a constant of this module or of its callers')
        + (caller.with_ + ", " if caller.with_ else "")
        + "c AS ("
        + caller.select
        + ") SELECT c.*, r.* FROM c LEFT JOIN LATERAL (SELECT * FROM ("
        + read
        + ") q WHERE c.caller_ok AND c.accepted) r ON true"
    )


async def caller_counted(conn: asyncpg.Connection, query: CallerQuery) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(query.sql, *query.args)
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
