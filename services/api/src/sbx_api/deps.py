"""FastAPI dependencies: shared resources and the authenticated caller."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from sbx_common.crypto import (
    API_KEY_PREFIX,
    InvalidToken,
    TokenClaims,
    api_key_matches,
    api_key_prefix,
    decode_claims,
    is_well_formed_api_key,
)
from sbx_common.errors import NotFound, Unauthorized
from sbx_common.timeutil import utcnow
from starlette.requests import HTTPConnection

from sbx_api import ratelimit
from sbx_api.api_keys import repository as api_keys
from sbx_api.auth import repository as users
from sbx_api.state import AppState

# lastUsedAt is written at most this often per key, so hot keys do not write on every request.
LAST_USED_RESOLUTION = timedelta(seconds=30)


def get_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.sbx
    return state


async def state_dependency(conn: HTTPConnection) -> AppState:
    """`get_state` as a dependency: async, so FastAPI calls it in the event loop rather than
    handing it to a worker thread on every request."""
    return get_state(conn)


State = Annotated[AppState, Depends(state_dependency)]


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    email: str
    api_key_id: uuid.UUID | None = None
    # The JWT's id and expiry when the caller presented a JWT (what a logout revokes).
    token_id: str | None = None
    token_expires_at: datetime | None = None


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("token")
    return None


async def authenticate(state: AppState, token: str | None) -> Caller:
    """Resolve a JWT or an `sk_` API key to the user it belongs to, or raise Unauthorized."""
    if not token:
        raise Unauthorized("Missing credentials.")
    async with state.pool.acquire() as conn:
        if token.startswith(API_KEY_PREFIX):
            if not is_well_formed_api_key(token):  # garbage never reaches the database
                raise Unauthorized("Invalid or revoked API key.")
            return await _authenticate_api_key(conn, token)
        try:
            claims = verified_claims(token, state.settings.jwt_secret.get_secret_value())
        except InvalidToken:
            raise Unauthorized("Invalid or expired token.") from None
        row = await users.token_owner(conn, claims.user_id, claims.jti)
    # Refused too: a token issued before the last password change, or revoked by a logout.
    if row is None or row["revoked"] or claims.version != row["token_version"]:
        raise Unauthorized("Invalid or expired token.")
    return Caller(
        user_id=row["id"], email=row["email"], token_id=claims.jti, token_expires_at=claims.expires_at
    )


@functools.lru_cache(maxsize=4096)
def _decoded(token: str, secret: str) -> TokenClaims:
    return decode_claims(token, secret)


def verified_claims(token: str, secret: str) -> TokenClaims:
    """The claims of a JWT whose signature checks out, remembered per token (the HMAC check and
    parsing are the same every time); its expiry is checked on every use. Revocation is not
    decided here: the caller's query checks the token version and `revoked_tokens` each time."""
    claims = _decoded(token, secret)
    if claims.expires_at <= utcnow():
        raise InvalidToken("expired")
    return claims


async def _authenticate_api_key(conn: asyncpg.Connection, key: str) -> Caller:
    for row in await api_keys.active_with_prefix(conn, api_key_prefix(key)):
        if api_key_matches(key, row["key_hash"]):
            now = utcnow()
            if row["last_used_at"] is None or now - row["last_used_at"] > LAST_USED_RESOLUTION:
                await api_keys.mark_used(conn, row["id"], now)
            return Caller(user_id=row["user_id"], email=row["email"], api_key_id=row["id"])
    raise Unauthorized("Invalid or revoked API key.")


async def resolve_caller(conn: HTTPConnection, state: AppState) -> Caller:
    """Authenticate the request once: the outcome (caller or 401) is kept for the request."""
    cached: Caller | Unauthorized | None = conn.scope.setdefault("state", {}).get("caller")
    if cached is None:
        try:
            cached = await authenticate(state, bearer_token(conn))
        except Unauthorized as exc:
            cached = exc
        conn.scope["state"]["caller"] = cached
    if isinstance(cached, Unauthorized):
        raise Unauthorized(cached.message)
    return cached


async def get_caller(request: Request, state: State) -> Caller:
    return await resolve_caller(request, state)


CurrentUser = Annotated[Caller, Depends(get_caller)]


def parse_id(value: str) -> uuid.UUID:
    """Path ids: a malformed id is indistinguishable from an unknown one (404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound() from None


async def global_limits(conn: HTTPConnection) -> None:
    """Run by `middleware.RateLimitMiddleware` on every request: `/auth/*` per IP
    (SBX_AUTH_RATE_LIMIT per 15 minutes), then every route per user, or per IP for requests
    without valid credentials (SBX_RATE_LIMIT_PER_MINUTE).

    WebSocket handshakes are not counted here: a refusal there must be a close code, not a 429.
    """
    if conn.scope["type"] != "http":
        return
    state = get_state(conn)
    settings = state.settings
    ip = ratelimit.client_ip(conn)
    if conn.url.path.startswith("/auth/"):
        await ratelimit.enforce(conn, "auth", ip, ratelimit.per_minutes(settings.auth_rate_limit, 15))
    limit = ratelimit.per_minutes(settings.rate_limit_per_minute)
    if await _resolve_jwt_caller_and_count(conn, state, limit):
        return
    try:
        identity = f"user:{(await resolve_caller(conn, state)).user_id}"
    except Unauthorized:
        identity = f"ip:{ip}"
    await ratelimit.enforce(conn, "global", identity, limit)


async def _resolve_jwt_caller_and_count(
    conn: HTTPConnection, state: AppState, limit: ratelimit.Limit
) -> bool:
    """The common case in one database round trip: a JWT's caller looked up and the user's
    "global" hit counted by the same query. True when the caller was resolved and counted (the
    outcome kept for the request as `resolve_caller` keeps it); False to go the general way (no
    JWT, limits not in PostgreSQL, or credentials refused: their request counts against the IP)."""
    token = bearer_token(conn)
    if not token or token.startswith(API_KEY_PREFIX) or not ratelimit.counted_in_database(conn):
        return False
    try:
        claims = verified_claims(token, state.settings.jwt_secret.get_secret_value())
    except InvalidToken:
        return False
    async with state.pool.acquire() as db:
        row = await users.token_owner_counted(
            db, (claims.user_id, claims.jti, claims.version), "global", (limit.amount, limit.seconds)
        )
    if row is None or row["revoked"] or claims.version != row["token_version"] or row["accepted"] is None:
        conn.scope.setdefault("state", {})["caller"] = Unauthorized("Invalid or expired token.")
        return False
    conn.scope.setdefault("state", {})["caller"] = Caller(
        user_id=row["id"], email=row["email"], token_id=claims.jti, token_expires_at=claims.expires_at
    )
    ratelimit.record(conn, *ratelimit.quota_of(limit, row))
    return True
