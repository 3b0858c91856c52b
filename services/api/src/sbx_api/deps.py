"""FastAPI dependencies: shared resources and the authenticated caller."""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sbx_common.crypto import (
    API_KEY_PREFIX,
    InvalidToken,
    TokenClaims,
    api_key_matches,
    api_key_prefix,
    decode_claims,
    hash_api_key,
    is_well_formed_api_key,
)
from sbx_common.errors import NotFound, PlatformError, RateLimited, Unauthorized
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
    """Authenticate the request once: the outcome (caller or 401) is kept for the request. A
    caller the rate-limit middleware left pending is looked up (and counted) here."""
    cached: Caller | Unauthorized | PendingCaller | None = conn.scope.setdefault("state", {}).get("caller")
    if isinstance(cached, PendingCaller):
        return await cached.resolve(state)
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
    if conn.scope["path"].startswith("/auth/"):
        await ratelimit.enforce(conn, "auth", ip, ratelimit.per_minutes(settings.auth_rate_limit, 15))
    limit = ratelimit.per_minutes(settings.rate_limit_per_minute)
    if await _resolve_caller_and_count(conn, state, limit):
        return
    try:
        identity = f"user:{(await resolve_caller(conn, state)).user_id}"
    except Unauthorized:
        identity = f"ip:{ip}"
    await ratelimit.enforce(conn, "global", identity, limit)


# Reads whose route authenticates the caller, counts the hit and reads its answer in one
# statement (`GET /sandboxes`, `GET /sandboxes/:id`): the middleware leaves their caller pending
# (`PendingCaller`). Any other route on these paths that asks for `CurrentUser` looks the
# caller up itself, and an error answered first settles it (`settle_before_error`).
_SELF_AUTHENTICATING_READS = re.compile(r"^/sandboxes(/[^/]+)?$")


def authenticates_itself(conn: HTTPConnection) -> bool:
    return conn.scope["method"] == "GET" and _SELF_AUTHENTICATING_READS.match(conn.scope["path"]) is not None


@dataclass(frozen=True)
class PendingCaller:
    """Credentials of the right shape, not looked up yet: `query` looks the caller up and makes
    the request's hit on its "global" limit. `settle` turns that row into the request's
    outcome, as the middleware would have: the caller, a 429, or a 401 after the request was
    counted against its IP."""

    conn: HTTPConnection
    query: users.CallerQuery
    limit: ratelimit.Limit
    token_id: str | None = None
    token_expires_at: datetime | None = None

    async def resolve(self, state: AppState) -> Caller:
        """Looked up alone (a route that does not read with it)."""
        async with state.pool.acquire() as db:
            row = await users.caller_counted(db, self.query)
        return await self.settle(row)

    async def settle(self, row: Mapping[str, Any] | None) -> Caller:
        request_state = self.conn.scope.setdefault("state", {})
        if row is None or not row["caller_ok"] or row["accepted"] is None:
            refused = Unauthorized(
                "Invalid or revoked API key." if self.token_id is None else "Invalid or expired token."
            )
            request_state["caller"] = refused
            ip = ratelimit.client_ip(self.conn)
            await ratelimit.enforce(self.conn, "global", f"ip:{ip}", self.limit)
            raise Unauthorized(refused.message)
        caller = Caller(
            user_id=row["caller_id"],
            email=row["caller_email"],
            api_key_id=row["caller_key_id"],
            token_id=self.token_id,
            token_expires_at=self.token_expires_at,
        )
        request_state["caller"] = caller
        ratelimit.record(self.conn, *ratelimit.quota_of(self.limit, row))
        return caller


async def get_self_authenticating_caller(request: Request, state: State) -> Caller | PendingCaller:
    """For a route that `authenticates_itself`: the caller the middleware left pending (the
    route settles it with its own query), else the caller as `CurrentUser` resolves it."""
    cached = request.scope.get("state", {}).get("caller")
    if isinstance(cached, PendingCaller):
        return cached
    return await resolve_caller(request, state)


SelfAuthenticatingCaller = Annotated[Caller | PendingCaller, Depends(get_self_authenticating_caller)]


def caller_query(caller: Caller | PendingCaller) -> users.CallerQuery:
    """The statement a read joins to (`auth.repository.joined`): the pending caller's lookup, or
    a caller already let in as it is."""
    return caller.query if isinstance(caller, PendingCaller) else users.known_caller(caller.user_id)


async def settled(caller: Caller | PendingCaller, row: Mapping[str, Any] | None) -> Caller:
    """The caller, once the row of its `caller_query` is back: a pending one settled (401, 429)."""
    return await caller.settle(row) if isinstance(caller, PendingCaller) else caller


async def settle_before_error(conn: HTTPConnection) -> PlatformError | None:
    """An error is about to be answered (a 400, a 404, ...): a caller still pending is settled
    first, so that credentials refused or a budget spent answer 401 or 429 as on every route,
    and the request is counted. The refusal to answer instead, if any."""
    cached = conn.scope.get("state", {}).get("caller")
    if not isinstance(cached, PendingCaller):
        return None
    try:
        await cached.resolve(get_state(conn))
    except (Unauthorized, RateLimited) as refusal:
        return refusal
    return None


def pending_caller(conn: HTTPConnection, state: AppState, limit: ratelimit.Limit) -> PendingCaller | None:
    """The request's credentials as a `PendingCaller`, or None when they cannot be looked up in
    one statement with the hit (none given, malformed, a JWT that fails its signature or
    expiry, or limits not counted in PostgreSQL): those go the general way."""
    token = bearer_token(conn)
    if not token or not ratelimit.counted_in_database(conn):
        return None
    hit = ("global", (limit.amount, limit.seconds))
    if token.startswith(API_KEY_PREFIX):
        if not is_well_formed_api_key(token):
            return None
        key = (api_key_prefix(token), hash_api_key(token))
        return PendingCaller(
            conn, users.key_caller_counted(key, *hit, LAST_USED_RESOLUTION.total_seconds()), limit
        )
    try:
        claims = verified_claims(token, state.settings.jwt_secret.get_secret_value())
    except InvalidToken:
        return None
    query = users.jwt_caller_counted((claims.user_id, claims.jti, claims.version), *hit)
    return PendingCaller(conn, query, limit, claims.jti, claims.expires_at)


async def _resolve_caller_and_count(conn: HTTPConnection, state: AppState, limit: ratelimit.Limit) -> bool:
    """The common case in one database round trip: the caller looked up and the user's "global"
    hit counted by the same query, or, for a route that authenticates itself, left pending
    for the route's own query (no round trip here). True when the caller was resolved and
    counted or left pending (the outcome kept for the request as `resolve_caller` keeps it);
    False to go the general way. Credentials refused count against the request's IP."""
    pending = pending_caller(conn, state, limit)
    if pending is None:
        return False
    if authenticates_itself(conn):
        conn.scope.setdefault("state", {})["caller"] = pending
        return True
    with contextlib.suppress(Unauthorized):  # counted against the IP; the route answers 401
        await pending.resolve(state)
    return True
