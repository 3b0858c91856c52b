"""Event streams: SSE `GET /sandboxes/:id/events`, `GET /events`, WebSocket `/ws/events`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient
from sbx_common.topology import STREAM_EVT

from tests.streams.clients import SseEvent, sse_events
from tests.support.api import User
from tests.support.nats_auth import admin_connect
from tests.support.platform import Platform, extra_api
from tests.support.sandboxes import Sandboxes, lifecycle
from tests.support.sockets import close_code_of, ws_connect, ws_url
from tests.support.waiting import wait_for

EVENT_FIELDS = {"id", "type", "sandboxId", "status", "occurredAt", "data"}


@contextlib.asynccontextmanager
async def event_stream(
    client: httpx.AsyncClient, path: str, user: User, last_event_id: str | None = None
) -> AsyncIterator[AsyncIterator[SseEvent | str]]:
    """An open SSE stream (its subscription in place), as events and comments."""
    headers = dict(user.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", path, headers=headers, timeout=httpx.Timeout(60, read=30)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        items = sse_events(response)
        assert await anext(items) == "subscribed"
        yield items


async def next_events(items: AsyncIterator[SseEvent | str], count: int) -> list[SseEvent]:
    found: list[SseEvent] = []
    async with asyncio.timeout(30):
        async for item in items:
            if isinstance(item, SseEvent):
                found.append(item)
                if len(found) == count:
                    break
    return found


async def events_until(items: AsyncIterator[SseEvent | str], status: str, sandbox_id: str) -> list[SseEvent]:
    found: list[SseEvent] = []
    async with asyncio.timeout(30):
        async for item in items:
            if isinstance(item, SseEvent):
                found.append(item)
                if item.data["sandboxId"] == sandbox_id and item.data["status"] == status:
                    return found
    return found


async def test_sse_follows_a_sandbox_life_and_resumes_after_last_event_id(
    client: httpx.AsyncClient, user: User, sandboxes: Sandboxes
) -> None:
    sandbox = await sandboxes.run(user, "sleep 600")
    path = f"/sandboxes/{sandbox['id']}/events"
    async with event_stream(client, path, user) as items:
        # Without Last-Event-ID, the sandbox's history comes first: it got to `running`.
        history = await events_until(items, "running", sandbox["id"])
        await lifecycle(client, user, sandbox["id"], "stop")
        later = await events_until(items, "stopped", sandbox["id"])
    events = history + later
    for event in events:
        assert set(event.data) == EVENT_FIELDS
        assert event.id == event.data["id"]
        assert event.data["type"] == f"sandbox.{event.data['status']}"
        assert event.data["sandboxId"] == sandbox["id"]
        assert event.data["occurredAt"].endswith("Z")
    assert [e.data["status"] for e in later] == ["stopping", "stopped"]
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)

    # Resuming after any event gives exactly the events that followed it.
    for index in (0, len(events) - 2):
        async with event_stream(client, path, user, last_event_id=events[index].id) as items:
            rest = await next_events(items, len(events) - index - 1)
        assert [e.id for e in rest] == [e.id for e in events[index + 1 :]]

    # Also as `?lastEventId=` (EventSource polyfills), and the caller's whole stream from there.
    async with event_stream(client, f"/events?lastEventId={events[-2].id}", user) as items:
        assert [e.id for e in await next_events(items, 1)] == [events[-1].id]


async def test_a_users_event_stream_never_shows_another_users_sandbox(
    platform: Platform, client: httpx.AsyncClient, user: User, other_user: User, sandboxes: Sandboxes
) -> None:
    async with (
        event_stream(client, "/events", user) as mine,
        # `since=0`: every event of the (new) user, however late the socket's feed starts.
        ws_connect(ws_url(platform.ws_url, "/ws/events", other_user.token, since=0)) as theirs_socket,
    ):
        theirs = await sandboxes.run(other_user, "sleep 600")
        own = await sandboxes.run(user, "sleep 600")
        seen = await events_until(mine, "running", own["id"])
        assert {e.data["sandboxId"] for e in seen} == {own["id"]}

        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not frames or frames[-1]["status"] != "running":
                frames.append(json.loads(await theirs_socket.recv()))
        assert {f["sandboxId"] for f in frames} == {theirs["id"]}
        assert set(frames[-1]) == EVENT_FIELDS

    # A foreign sandbox's own stream does not exist for this user.
    response = await client.get(f"/sandboxes/{theirs['id']}/events", headers=user.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_events_socket_resumes_after_since(
    platform: Platform, client: httpx.AsyncClient, user: User, sandboxes: Sandboxes
) -> None:
    # `since=0`: every event of the (new) user, however late the socket's feed starts.
    url = ws_url(platform.ws_url, "/ws/events", user.token, since=0)
    async with ws_connect(url) as socket:
        sandbox = await sandboxes.run(user, "sleep 600")
        await lifecycle(client, user, sandbox["id"], "stop")
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not frames or frames[-1]["status"] != "stopped":
                frames.append(json.loads(await socket.recv()))
    async with ws_connect(ws_url(platform.ws_url, "/ws/events", user.token, since=frames[0]["id"])) as socket:
        async with asyncio.timeout(30):
            resumed = [json.loads(await socket.recv()) for _ in frames[1:]]
    assert [f["id"] for f in resumed] == [f["id"] for f in frames[1:]]

    assert await close_code_of(ws_url(platform.ws_url, "/ws/events", "bad-token")) == 4001
    assert await close_code_of(f"{platform.ws_url}/ws/events") == 4001
    assert await close_code_of(ws_url(platform.ws_url, "/ws/events", user.token, since="abc")) == 1008


async def _consumers_of(nc: NatsClient, user: User) -> int:
    """Consumers on SBX_EVT filtering on this user's events (the user's subscriptions)."""
    consumers = await nc.jetstream().consumers_info(STREAM_EVT)
    return sum(1 for c in consumers if user.id in (c.config.filter_subject or ""))


async def test_ending_a_subscription_frees_its_consumer(
    platform: Platform, client: httpx.AsyncClient, user: User, nats_url: str
) -> None:
    nc = await admin_connect(nats_url, "tests-streams-consumers")
    try:
        assert await _consumers_of(nc, user) == 0
        async with contextlib.AsyncExitStack() as stack:
            for path in ("/events", "/events"):
                await stack.enter_async_context(event_stream(client, path, user))
            url = ws_url(platform.ws_url, "/ws/events", user.token)
            for _ in range(2):
                await stack.enter_async_context(ws_connect(url))

            async def subscribed() -> bool:
                return await _consumers_of(nc, user) == 4

            await wait_for(subscribed, timeout=10)

        # Freed right away, well before the server's own 30 s clean-up of idle consumers.
        async def freed() -> bool:
            return await _consumers_of(nc, user) == 0

        await wait_for(freed, timeout=10)
    finally:
        await nc.close()


async def test_sse_heartbeat_and_bad_requests(
    platform: Platform, client: httpx.AsyncClient, user: User, tmp_path: Path
) -> None:
    async with extra_api(platform, tmp_path, SBX_SSE_HEARTBEAT_SECONDS="0.2") as api:
        async with event_stream(api, "/events", user) as items:
            async with asyncio.timeout(10):
                assert await anext(items) == "heartbeat"
                assert await anext(items) == "heartbeat"

    response = await client.get("/events", headers={**user.headers, "Last-Event-ID": "not-a-number"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert (await client.get("/events")).status_code == 401
    assert (await client.get("/events", headers={"Authorization": "Bearer nope"})).status_code == 401
    response = await client.get(
        "/sandboxes/00000000-0000-0000-0000-000000000000/events", headers=user.headers
    )
    assert response.status_code == 404
    assert (await client.get("/sandboxes/not-an-id/events", headers=user.headers)).status_code == 404
