"""Helpers of the process tests: the routes of the "Processes" contract, and its socket."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.api import User, data_of
from tests.support.sockets import ws_connect, ws_url
from tests.support.waiting import wait_for


async def start(
    client: httpx.AsyncClient, user: User, sandbox_id: str, command: Any, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/sandboxes/{sandbox_id}/processes", json={"command": command, **fields}, headers=user.headers
    )
    created: dict[str, Any] = data_of(response, 201)
    return created


async def get(client: httpx.AsyncClient, user: User, sandbox_id: str, process_id: str) -> dict[str, Any]:
    found: dict[str, Any] = data_of(
        await client.get(f"/sandboxes/{sandbox_id}/processes/{process_id}", headers=user.headers)
    )
    return found


async def wait_ended(
    client: httpx.AsyncClient, user: User, sandbox_id: str, process_id: str, timeout: float = 30
) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        process = await get(client, user, sandbox_id, process_id)
        return process if process["status"] != "running" else None

    return await wait_for(ended, timeout=timeout, what="the process ended")


async def output(
    client: httpx.AsyncClient, user: User, sandbox_id: str, process_id: str, **query: Any
) -> dict[str, Any]:
    response = await client.get(
        f"/sandboxes/{sandbox_id}/processes/{process_id}/output", params=query, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    return body


async def all_output(
    client: httpx.AsyncClient, user: User, sandbox_id: str, process_id: str
) -> list[dict[str, Any]]:
    """Every kept chunk, page after page."""
    chunks: list[dict[str, Any]] = []
    since = 0
    while True:
        page = await output(client, user, sandbox_id, process_id, since=since, limit=500)
        if not page["data"]:
            return chunks
        chunks.extend(page["data"])
        since = page["nextSince"]


def text_of(chunks: list[dict[str, Any]], stream: str | None = None) -> str:
    return "".join(c["text"] for c in chunks if stream is None or c["stream"] == stream)


def socket_url(ws_base: str, user: User, sandbox_id: str, process_id: str, **query: Any) -> str:
    return ws_url(ws_base, f"/ws/sandboxes/{sandbox_id}/processes/{process_id}", user.token, **query)


async def read_socket(
    url: str, stop_after: int | None = None, send: list[Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The output frames (at most `stop_after` of them) and the exit frame, if it came."""
    frames: list[dict[str, Any]] = []
    async with ws_connect(url) as ws:
        for item in send or []:
            await ws.send(item if isinstance(item, str | bytes) else json.dumps(item))
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "exit":
                return frames, frame
            if frame["type"] == "output":
                frames.append(frame)
                if stop_after is not None and len(frames) >= stop_after:
                    return frames, None
