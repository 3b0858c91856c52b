"""Server-sent events: an EventFeed written as `text/event-stream`.

The body starts with a `: subscribed` comment once the feed's consumer exists (events from then
on are delivered), carries each event as `id: <seq>` + `data: <json>`, and a `: heartbeat`
comment after each quiet interval so proxies and clients can tell a live stream from a dead
one. The feed is closed (its consumer deleted) however the response ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sbx_api.events.feed import EventFeed, FeedOverflow
from sbx_api.events.schemas import event_object

CLOSE_TIMEOUT = 5.0


async def _body(feed: EventFeed, heartbeat_seconds: float) -> AsyncIterator[str]:
    yield ": subscribed\n\n"
    while True:
        try:
            seq, event = await asyncio.wait_for(feed.next(), heartbeat_seconds)
        except TimeoutError:
            yield ": heartbeat\n\n"
            continue
        except FeedOverflow:
            return  # the client resumes with Last-Event-ID
        payload = json.dumps(event_object(seq, event), separators=(",", ":"))
        yield f"id: {seq}\ndata: {payload}\n\n"


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that owns its feed."""

    def __init__(self, feed: EventFeed, heartbeat_seconds: float) -> None:
        super().__init__(
            _body(feed, heartbeat_seconds),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The response may end by cancellation (client gone): clean up regardless.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await self.feed.close()
