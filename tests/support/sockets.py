"""WebSocket clients of the API (`/ws/...`): the URL with its token, a connection, and the close
code a refused or ended socket gets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


def ws_url(base: str, path: str, token: str, **query: object) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"token": token, **query}.items())
    return f"{base}{path}?{params}"


@contextlib.asynccontextmanager
async def ws_connect(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(url, open_timeout=10, **kwargs) as socket:
        yield socket


async def close_code_of(url: str, timeout: float = 15) -> int | None:
    """Connect and read until the server closes; the close code it sent."""
    async with ws_connect(url) as socket:
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await socket.recv()
        return socket.close_code
