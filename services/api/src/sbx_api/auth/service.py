"""Signup, login, password change and logout: bcrypt password hashes, JWTs (revoked by a
password change through the user's token version, by a logout through their `jti`), and an
audit row for every attempt."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
from sbx_common.crypto import DUMMY_PASSWORD_HASH, hash_password, issue_token, verify_password
from sbx_common.errors import Conflict, Unauthorized, ValidationFailed

from sbx_api.audit import service as audit
from sbx_api.audit.service import Outcome
from sbx_api.auth import repository
from sbx_api.auth.schemas import AuthResult, UserOut
from sbx_api.deps import Caller
from sbx_api.state import AppState

BAD_CREDENTIALS = "Invalid email or password."
TARGET = "user"


def _signed_in(state: AppState, row: asyncpg.Record) -> AuthResult:
    """The user (never its password hash) with a fresh token of its current token version."""
    settings = state.settings
    token = issue_token(
        row["id"],
        settings.jwt_secret.get_secret_value(),
        timedelta(hours=settings.jwt_ttl_hours),
        version=row["token_version"],
    )
    user = UserOut(id=row["id"], email=row["email"], created_at=row["created_at"])
    return AuthResult(user=user, token=token)


async def signup(state: AppState, email: str, password: str) -> AuthResult:
    """Create the account and return it with a token; 409 when the email is already registered."""
    # bcrypt takes about 0.3 s: hash in a worker thread so the event loop keeps serving.
    password_hash = await asyncio.to_thread(hash_password, password)
    user_id = uuid.uuid4()
    # Until the account exists, the attempt is nobody's.
    async with audit.attempt(state.pool, user_id=None, action="auth.signup", target_type=TARGET) as attempt:
        try:
            async with state.pool.acquire() as conn, conn.transaction():
                row = await repository.insert_user(conn, user_id, email, password_hash)
                await attempt.succeeded(conn, user_id=user_id, target_id=user_id)
        except asyncpg.UniqueViolationError:
            raise Conflict("An account with this email already exists.") from None
    return _signed_in(state, row)


async def login(state: AppState, email: str, password: str) -> AuthResult:
    """Check the credentials; the answer and its timing do not tell whether the email exists."""
    async with state.pool.acquire() as conn:
        row = await repository.find_by_email(conn, email.strip())
    password_hash = row["password_hash"] if row is not None else DUMMY_PASSWORD_HASH
    valid = await asyncio.to_thread(verify_password, password, password_hash)
    user_id = row["id"] if row is not None else None
    outcome = Outcome.SUCCESS if row is not None and valid else Outcome.DENIED
    await audit.record(
        state.pool,
        user_id=user_id,
        action="auth.login",
        target_type=TARGET,
        target_id=user_id,
        outcome=outcome,
    )
    if row is None or not valid:
        raise Unauthorized(BAD_CREDENTIALS)
    return _signed_in(state, row)


async def change_password(
    state: AppState, caller: Caller, current_password: str, new_password: str
) -> AuthResult:
    """Check the current password, store the new one and revoke every JWT issued before (the
    user's token version moves on); the answer carries a token valid under the new version."""
    async with audit.attempt(
        state.pool,
        user_id=caller.user_id,
        action="auth.password",
        target_type=TARGET,
        target_id=caller.user_id,
    ) as attempt:
        async with state.pool.acquire() as conn:
            row = await repository.find_by_id(conn, caller.user_id)
        if row is None:
            raise Unauthorized()
        if not await asyncio.to_thread(verify_password, current_password, row["password_hash"]):
            # 400, not 401: the session is still valid, only this field is wrong.
            raise ValidationFailed.for_field("currentPassword", "The current password is wrong.")
        password_hash = await asyncio.to_thread(hash_password, new_password)
        async with state.pool.acquire() as conn, conn.transaction():
            updated = await repository.set_password(conn, caller.user_id, password_hash)
            await attempt.succeeded(conn)
    return _signed_in(state, updated)


async def logout(state: AppState, caller: Caller) -> None:
    """Revoke the JWT the caller presented (an API key is revoked with DELETE /api-keys/:id)."""
    if caller.token_id is None or caller.token_expires_at is None:
        raise ValidationFailed("Logout ends a token session; revoke an API key with DELETE /api-keys/:id.")
    async with state.pool.acquire() as conn:
        await repository.revoke_token(conn, caller.token_id, caller.token_expires_at)
    await audit.record(
        state.pool,
        user_id=caller.user_id,
        action="auth.logout",
        target_type=TARGET,
        target_id=caller.user_id,
        outcome=Outcome.SUCCESS,
    )


async def me(state: AppState, user_id: uuid.UUID) -> UserOut:
    async with state.pool.acquire() as conn:
        row = await repository.get_user(conn, user_id)
    if row is None:
        raise Unauthorized()
    return UserOut.model_validate(dict(row))
