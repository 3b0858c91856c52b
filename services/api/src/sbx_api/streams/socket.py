"""What every WebSocket route shares: closing with a code, authentication, the owned sandbox,
query parameters, reading the client, and the database seen from a socket.

A refusal must reach the client as a close code, and a browser only sees close codes of
accepted sockets, so each route accepts first and then closes with the code that applies. The
codes themselves are `sbx_common.codes.WsClose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from sbx_common.codes import WsClose
from sbx_common.errors import Unauthorized
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sbx_api.deps import Caller, authenticate, bearer_token
from sbx_api.state import AppState
from sbx_api.streams import repository
from sbx_api.usage import CapReached, Held, UsageCounter

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0  # a client that stopped reading gets this long to take the close frame
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class CloseSocket(Exception):
    """End the socket with this code and reason."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def close(websocket: WebSocket, code: int, reason: str = "") -> None:
    """Close if still open; a client that stopped reading cannot hold the server up."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason[:120]), CLOSE_TIMEOUT)


@contextlib.asynccontextmanager
async def database(state: AppState, unavailable: str) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for the block; the database failing closes the socket with 1011."""
    try:
        async with state.pool.acquire() as conn:
            yield conn
    except DATABASE_ERRORS as exc:
        raise CloseSocket(WsClose.INTERNAL_ERROR, unavailable) from exc


async def caller_of(websocket: WebSocket, state: AppState) -> Caller:
    try:
        return await authenticate(state, bearer_token(websocket))
    except Unauthorized as exc:
        raise CloseSocket(WsClose.UNAUTHORIZED, exc.message) from None


async def owned_sandbox(state: AppState, caller: Caller, raw_id: str) -> tuple[uuid.UUID, str]:
    """The sandbox id and its status; 4004 for a malformed, unknown or foreign id."""
    try:
        sandbox_id = uuid.UUID(raw_id)
    except ValueError:
        raise CloseSocket(WsClose.NOT_FOUND, "No such sandbox.") from None
    async with database(state, "The database is unavailable.") as conn:
        status = await repository.sandbox_status(conn, sandbox_id, caller.user_id)
    if status is None:
        raise CloseSocket(WsClose.NOT_FOUND, "No such sandbox.")
    return sandbox_id, status


def int_param(websocket: WebSocket, name: str, default: int, low: int, high: int) -> int:
    value = optional_int_param(websocket, name, low, high)
    return default if value is None else value


def optional_int_param(websocket: WebSocket, name: str, low: int, high: int) -> int | None:
    """An integer query parameter in [low, high]; malformed ones close the socket with 1008."""
    raw = websocket.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CloseSocket(WsClose.POLICY, f"{name} must be an integer.") from None
    if not low <= value <= high:
        raise CloseSocket(WsClose.POLICY, f"{name} must be between {low} and {high}.")
    return value


def bool_param(websocket: WebSocket, name: str) -> bool:
    """A boolean query parameter (`true`/`false`/`1`/`0`, default false); else 1008."""
    raw = (websocket.query_params.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise CloseSocket(WsClose.POLICY, f"{name} must be true or false.")
    return raw in ("true", "1")


async def until_disconnected(
    websocket: WebSocket, on_message: Callable[[Mapping[str, Any]], Awaitable[None]]
) -> None:
    """Read the client's frames (handing each to `on_message`) until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await on_message(message)


async def ignore(_message: Mapping[str, Any]) -> None:
    return None


async def until_first(*tasks: asyncio.Task[Any]) -> set[asyncio.Task[Any]]:
    """Wait until one of the tasks ends, then cancel the others and let them finish; the tasks
    that ended by themselves (their results are the caller's to read)."""
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done


async def serve(websocket: WebSocket, session: Callable[[], Awaitable[None]]) -> None:
    """Accept, run the session, and close with the code it ends with (1011 for a bug)."""
    await websocket.accept()
    try:
        await session()
    except CloseSocket as exc:
        await close(websocket, exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    except Exception:
        logger.exception("websocket session failed")
        await close(websocket, WsClose.INTERNAL_ERROR, "Internal error.")
    else:
        await close(websocket, WsClose.NORMAL)


@contextlib.asynccontextmanager
async def holding_socket(
    counter: UsageCounter, kind: Held, user_id: uuid.UUID, limit: int
) -> AsyncIterator[None]:
    """Hold one unit for a socket's life; close 4029 at the cap."""
    try:
        await counter.acquire(kind, user_id, limit)
    except CapReached as exc:
        raise CloseSocket(WsClose.CAP_REACHED, str(exc)) from None
    try:
        yield
    finally:
        await counter.release(kind, user_id)
