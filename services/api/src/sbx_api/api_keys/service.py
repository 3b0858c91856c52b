"""API keys: `sk_` + 32 random bytes, stored as a SHA-256 hash, found by prefix, revocable, and
optionally expiring (`expires_at`: past it the key is a 401)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sbx_common.crypto import generate_api_key
from sbx_common.errors import NotFound
from sbx_common.timeutil import utcnow

from sbx_api.api_keys import repository
from sbx_api.api_keys.schemas import ApiKeyOut, CreatedApiKey
from sbx_api.audit import service as audit
from sbx_api.pagination import PageParams, split_page, time_id_after, time_id_key
from sbx_api.state import AppState

TARGET = "api_key"


async def create(
    state: AppState, user_id: uuid.UUID, name: str, expires_in_days: int | None = None
) -> CreatedApiKey:
    new_key = generate_api_key()
    key_id = uuid.uuid4()
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    async with (
        audit.attempt(
            state.pool, user_id=user_id, action="api_key.create", target_type=TARGET, target_id=key_id
        ) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        row = await repository.insert(
            conn,
            key_id=key_id,
            user_id=user_id,
            name=name,
            prefix=new_key.prefix,
            key_hash=new_key.key_hash,
            expires_at=expires_at,
        )
        details = {"name": name, "keyPrefix": new_key.prefix, "expiresInDays": expires_in_days}
        await attempt.succeeded(conn, details=details)
    return CreatedApiKey(
        id=row["id"],
        name=row["name"],
        key_prefix=row["key_prefix"],
        key=new_key.key,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


async def list_keys(
    state: AppState, user_id: uuid.UUID, page: PageParams
) -> tuple[list[ApiKeyOut], str | None]:
    after = time_id_after(page)
    async with state.pool.acquire() as conn:
        rows = await repository.list_active(conn, user_id, after=after, limit=page.limit + 1)
    items, next_cursor = split_page(rows, page.limit, lambda r: time_id_key(r["created_at"], r["id"]))
    return [ApiKeyOut.model_validate(dict(r)) for r in items], next_cursor


async def revoke(state: AppState, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Revoke at once: every later request with the key is a 401."""
    async with (
        audit.attempt(
            state.pool, user_id=user_id, action="api_key.delete", target_type=TARGET, target_id=key_id
        ) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        if not await repository.revoke(conn, user_id, key_id):
            raise NotFound("No such API key.")
        await attempt.succeeded(conn)
