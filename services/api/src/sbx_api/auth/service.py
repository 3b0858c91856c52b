"""Signup and login: bcrypt password hashes, JWTs, and an audit row for every attempt."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
from sbx_common.crypto import DUMMY_PASSWORD_HASH, hash_password, issue_token, verify_password
from sbx_common.errors import Conflict, Unauthorized

from sbx_api.audit import service as audit
from sbx_api.audit.service import Outcome
from sbx_api.auth import repository
from sbx_api.auth.schemas import AuthResult, UserOut
from sbx_api.state import AppState

BAD_CREDENTIALS = "Invalid email or password."
TARGET = "user"


def _signed_in(state: AppState, row: asyncpg.Record) -> AuthResult:
    """The user (never its password hash) with a fresh token."""
    settings = state.settings
    token = issue_token(
        row["id"], settings.jwt_secret.get_secret_value(), timedelta(hours=settings.jwt_ttl_hours)
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


async def me(state: AppState, user_id: uuid.UUID) -> UserOut:
    async with state.pool.acquire() as conn:
        row = await repository.get_user(conn, user_id)
    if row is None:
        raise Unauthorized()
    return UserOut.model_validate(dict(row))
