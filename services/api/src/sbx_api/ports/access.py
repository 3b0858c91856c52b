"""Who may reach a sandbox's port, and what of the request is the platform's.

Two kinds of credential open a port:
- the owner's, as on every route: `Authorization: Bearer <JWT | sk_ key>` (and `?token=` on a
  WebSocket handshake). It is the platform's, so it is not passed on to the sandbox;
- a preview token (`tokens`) for exactly this sandbox and port: `?sbx_preview=<token>` on a first
  visit, then the `sbx_preview` cookie that visit sets. The request's own `Authorization`
  header then belongs to the app in the sandbox and goes through; the cookie and the parameter
  do not.
Either way the sandbox must be running and have a recorded address. A preview of a destroyed
sandbox is refused like a bad token (401): the link is revoked, not merely paused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

from sbx_common.errors import NotFound, NotRunning, Unauthorized, UpstreamUnavailable
from sbx_common.status import Status
from starlette.requests import HTTPConnection

from sbx_api.deps import authenticate, bearer_token, parse_id
from sbx_api.ports import repository, tokens
from sbx_api.ports.paths import PREVIEW_PARAM, TOKEN_PARAM, query_param
from sbx_api.state import AppState

GONE = frozenset({Status.DESTROYED.value, Status.EXPIRED.value, Status.DESTROYING.value})


@dataclass(frozen=True)
class Access:
    sandbox_id: uuid.UUID
    port: int
    owner_id: uuid.UUID
    address: str
    by_preview: bool
    # The first visit's token (from the query): the answer is a redirect that sets the cookie.
    first_visit: tokens.PreviewToken | None = None
    first_visit_token: str = ""
    # Query parameters that are the platform's (never sent to the sandbox).
    platform_params: set[str] = field(default_factory=set)


def preview_key(state: AppState) -> bytes:
    settings = state.settings
    return tokens.preview_key(
        settings.preview_secret.get_secret_value(), settings.jwt_secret.get_secret_value()
    )


def preview_cookie(conn: HTTPConnection) -> str | None:
    raw = conn.headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(PREVIEW_PARAM)
    return morsel.value if morsel is not None else None


def _check_preview(text: str, key: bytes, sandbox_id: uuid.UUID, port: int) -> tokens.PreviewToken:
    try:
        token = tokens.verify(text, key)
    except tokens.BadToken:
        raise Unauthorized("Invalid preview link.") from None
    if token.sandbox_id != sandbox_id or token.port != port:
        raise Unauthorized("This preview link is for another sandbox or port.")
    if token.expired(time.time()):
        raise Unauthorized("This preview link has expired.")
    return token


async def _by_preview(
    state: AppState, text: str, key: bytes, sandbox_id: uuid.UUID, port: int
) -> tuple[tokens.PreviewToken, repository.SandboxTarget]:
    token = _check_preview(text, key, sandbox_id, port)
    target = await repository.target(state.pool, sandbox_id)
    if target is None or target.owner_id != token.owner_id or target.status in GONE:
        raise Unauthorized("This preview link was revoked (the sandbox is gone).")
    return token, target


async def _by_credential(
    state: AppState, credential: str | None, sandbox_id: uuid.UUID
) -> tuple[uuid.UUID, repository.SandboxTarget]:
    caller = await authenticate(state, credential)
    target = await repository.target(state.pool, sandbox_id)
    if target is None or target.owner_id != caller.user_id:
        raise NotFound("No such sandbox.")
    return caller.user_id, target


async def resolve(conn: HTTPConnection, state: AppState, raw_id: str, port: int) -> Access:
    """The target of a proxied request and the credential that opened it, or the error to answer.

    A preview token (the query's, else the cookie's) is tried first; one that does not open this
    port gives way to a platform credential when the request carries one (an owner with an old
    preview cookie), and is the answer (401) otherwise."""
    sandbox_id = parse_id(raw_id)
    first = query_param(conn.scope.get("query_string", b""), PREVIEW_PARAM)
    preview_text = first or preview_cookie(conn)
    credential = bearer_token(conn)
    if credential is None and conn.scope["type"] == "websocket":
        credential = conn.query_params.get(TOKEN_PARAM)
    token: tokens.PreviewToken | None = None
    if preview_text:
        try:
            token, target = await _by_preview(state, preview_text, preview_key(state), sandbox_id, port)
        except Unauthorized:
            if not credential:
                raise
    if token is not None:
        owner_id = token.owner_id
    else:
        owner_id, target = await _by_credential(state, credential, sandbox_id)
    if target.status != Status.RUNNING.value:
        raise NotRunning(f"The sandbox is {target.status}, not running.")
    if not target.address:
        raise UpstreamUnavailable("The sandbox has no address on the sandbox network.")
    params = {PREVIEW_PARAM}
    if token is None and conn.scope["type"] == "websocket":
        params.add(TOKEN_PARAM)
    return Access(
        sandbox_id=sandbox_id,
        port=port,
        owner_id=owner_id,
        address=target.address,
        by_preview=token is not None,
        first_visit=token if token is not None and first else None,
        first_visit_token=first or "",
        platform_params=params,
    )
