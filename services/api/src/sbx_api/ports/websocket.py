"""WebSocket to a sandbox's port: the API makes its own handshake with the sandbox (same path,
query, subprotocols and headers, minus the platform's credentials), accepts the client with the
subprotocol the sandbox chose, then passes text, binary and close frames both ways.

Refusals are close codes of accepted sockets (see `streams.socket`): 4001 bad credentials, 4004
not the caller's sandbox, 4009 not running, 1008 a bad port or path, 1014 (RFC 6455 "bad
gateway") when nothing on that port accepts a WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sbx_common.codes import WsClose
from sbx_common.errors import NotFound, NotRunning, PlatformError, Unauthorized, UpstreamUnavailable
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from sbx_api.ports import access as port_access
from sbx_api.ports.access import Access
from sbx_api.ports.headers import WEBSOCKET_HANDSHAKE, request_headers
from sbx_api.ports.hosts import public_prefix
from sbx_api.ports.paths import UpstreamPath, parse_port, upstream_path, without_params
from sbx_api.state import AppState
from sbx_api.streams.socket import close, until_first
from sbx_api.usage import CapReached, Held

logger = logging.getLogger(__name__)

BAD_GATEWAY = 1014
# Close codes that must never be sent in a close frame (RFC 6455 7.4.1): what we send instead.
_UNSENDABLE = {1005: WsClose.NORMAL, 1006: WsClose.INTERNAL_ERROR, 1015: WsClose.INTERNAL_ERROR}
_REFUSALS: dict[type[PlatformError], int] = {
    Unauthorized: WsClose.UNAUTHORIZED,
    NotFound: WsClose.NOT_FOUND,
    NotRunning: WsClose.NOT_RUNNING,
    UpstreamUnavailable: BAD_GATEWAY,
}


def _close_code(error: PlatformError) -> int:
    for kind, code in _REFUSALS.items():
        if isinstance(error, kind):
            return code
    return WsClose.POLICY


async def serve(websocket: WebSocket, state: AppState, raw_id: str, raw_port: str) -> None:
    try:
        port = parse_port(raw_port)
        path = upstream_path(websocket.scope.get("raw_path") or b"", raw_id, raw_port)
        target = await port_access.resolve(websocket, state, raw_id, port)
    except PlatformError as exc:
        await websocket.accept()
        await close(websocket, _close_code(exc), exc.message)
        return
    usage, limit = state.usage, state.settings.max_proxy_sockets_per_user
    try:
        await usage.acquire(Held.PROXY_SOCKETS, target.owner_id, limit)
    except CapReached as exc:
        await websocket.accept()
        await close(websocket, WsClose.CAP_REACHED, str(exc))
        return
    try:
        await _relay(websocket, state, target, path)
    finally:
        await usage.release(Held.PROXY_SOCKETS, target.owner_id)


async def _relay(websocket: WebSocket, state: AppState, target: Access, path: UpstreamPath) -> None:
    """The handshake with the sandbox, then frames both ways until either side closes."""
    query = without_params(websocket.scope.get("query_string", b""), target.platform_params)
    resource = path.path + (b"?" + query if query else b"")
    uri = f"ws://{target.address}:{target.port}{resource.decode('latin-1')}"
    headers = request_headers(
        [(k, v) for k, v in websocket.headers.items() if k.lower() != "sec-websocket-protocol"],
        keep_authorization=target.by_preview,
        forwarded={
            "for": websocket.client.host if websocket.client else "",
            "prefix": public_prefix(websocket.scope, path.prefix),
        },
        drop=WEBSOCKET_HANDSHAKE,
    )
    try:
        upstream = await connect(
            uri,
            additional_headers=headers,
            subprotocols=list(websocket.scope.get("subprotocols") or []) or None,
            open_timeout=state.settings.proxy_connect_timeout_seconds,
            max_size=state.settings.proxy_ws_max_message_bytes,
            compression=None,
            user_agent_header=None,
            ping_interval=None,  # the client's own pings pass through
        )
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        logger.info(
            "sandbox port refused a websocket", extra={"port": target.port, "error": type(exc).__name__}
        )
        await websocket.accept()
        await close(
            websocket, BAD_GATEWAY, f"Nothing accepts a WebSocket on port {target.port} of the sandbox."
        )
        return
    async with upstream:
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _pump(websocket, upstream)


async def _pump(websocket: WebSocket, upstream: ClientConnection) -> None:
    client_closed: dict[str, Any] = {}

    async def client_to_upstream() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                client_closed["code"] = message.get("code", WsClose.NORMAL)
                client_closed["reason"] = message.get("reason") or ""
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def upstream_to_client() -> None:
        async for data in upstream:
            if isinstance(data, str):
                await websocket.send_text(data)
            else:
                await websocket.send_bytes(data)

    inbound = asyncio.create_task(client_to_upstream())
    outbound = asyncio.create_task(upstream_to_client())
    done = await until_first(inbound, outbound)
    for task in done:
        error = task.exception()
        if error is not None and not isinstance(error, ConnectionClosed | WebSocketDisconnect):
            logger.info("websocket proxy ended", extra={"error": repr(error)[:200]})
    if client_closed:
        code = int(client_closed["code"])
        await upstream.close(_UNSENDABLE.get(code, code), str(client_closed["reason"])[:120])
        return
    code = upstream.close_code if upstream.close_code is not None else 1006
    reason = upstream.close_reason or ""
    await close(websocket, _UNSENDABLE.get(code, code), reason)
