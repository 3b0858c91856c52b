"""The caller's sandbox events: server-sent events (`GET /events`, `GET /sandboxes/{id}/events`)
and the `/ws/events` WebSocket, both read from SBX_EVT through an `EventFeed`.

A feed is an ephemeral, ordered JetStream consumer. Its filter subject carries the owner
(`sbx.evt.<owner>.>` or `sbx.evt.<owner>.<sandbox>.*`), so the server only ever delivers the
caller's own events. Each event's stream sequence is its id: resuming "after event N" is a
consumer starting at sequence N + 1. Closing the feed deletes its consumer at once (the server
would also drop it after `INACTIVE_THRESHOLD` without interest).

SSE: the body starts with a `: subscribed` comment once the feed's consumer exists (events from
then on are delivered), carries each event as `id: <seq>` + `data: <json>`, and a `: heartbeat`
comment after each quiet interval so proxies and clients can tell a live stream from a dead one.
The feed is closed however the response ends.

WebSocket: `?since=<event id>` resumes right after that event; without it, only events from now
on. The feed's consumer is deleted as soon as the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import WsClose
from sbx_common.errors import Unavailable
from sbx_common.messages import SandboxEvent
from sbx_common.topology import STREAM_EVT
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from sbx_api.state import AppState
from sbx_api.streams import socket
from sbx_api.streams.schemas import event_object
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

logger = logging.getLogger(__name__)

INACTIVE_THRESHOLD = 30.0  # seconds: the server's own clean-up of a consumer nobody reads
IDLE_HEARTBEAT = 5.0  # seconds: lets the client notice a stalled consumer and recreate it
SSE_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class StartAt:
    """Where a feed begins: after a given event, at the first retained event, or with new ones."""

    after_seq: int | None = None
    everything: bool = False

    def consumer_config(self) -> ConsumerConfig:
        if self.after_seq is not None:
            return ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.after_seq + 1,
                inactive_threshold=INACTIVE_THRESHOLD,
            )
        policy = DeliverPolicy.ALL if self.everything else DeliverPolicy.NEW
        return ConsumerConfig(deliver_policy=policy, inactive_threshold=INACTIVE_THRESHOLD)


class FeedOverflow(Exception):
    """The reader fell more than the buffer behind."""


class EventFeed:
    """Events on `subject` from `start`, as (stream sequence, event) pairs, in stream order."""

    def __init__(self, js: JetStreamContext, subject: str, start: StartAt, max_buffered: int = 1000) -> None:
        self.js = js
        self.subject = subject
        self.start = start
        self._queue: asyncio.Queue[tuple[int, SandboxEvent]] = asyncio.Queue(max_buffered)
        self._subscription: JetStreamContext.PushSubscription | None = None
        self._overflowed = False

    async def open(self) -> EventFeed:
        try:
            self._subscription = await self.js.subscribe(
                self.subject,
                stream=STREAM_EVT,
                cb=self._on_message,
                ordered_consumer=True,
                idle_heartbeat=IDLE_HEARTBEAT,
                config=self.start.consumer_config(),
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise Unavailable("The event stream is unavailable right now.") from exc
        return self

    async def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        consumer = subscription._consumer  # the current name (an ordered consumer may be recreated)
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await subscription.unsubscribe()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self.js.delete_consumer(STREAM_EVT, consumer)

    async def next(self) -> tuple[int, SandboxEvent]:
        """The next event; FeedOverflow once the reader has taken everything it had room for."""
        if self._overflowed and self._queue.empty():
            raise FeedOverflow()
        return await self._queue.get()

    async def _on_message(self, msg: Msg) -> None:
        if self._overflowed:
            return
        try:
            event = SandboxEvent.model_validate_json(msg.data)
        except ValidationError:
            logger.warning("skipping a malformed event", extra={"subject": msg.subject})
            return
        try:
            self._queue.put_nowait((msg.metadata.sequence.stream, event))
        except asyncio.QueueFull:
            self._overflowed = True


def _event_json(seq: int, event: SandboxEvent) -> str:
    return json.dumps(event_object(seq, event), separators=(",", ":"))


# --- server-sent events -------------------------------------------------------------------------


async def _sse_body(feed: EventFeed, heartbeat_seconds: float) -> AsyncIterator[str]:
    yield ": subscribed\n\n"
    while True:
        try:
            seq, event = await asyncio.wait_for(feed.next(), heartbeat_seconds)
        except TimeoutError:
            yield ": heartbeat\n\n"
            continue
        except FeedOverflow:
            return  # the client resumes with Last-Event-ID
        yield f"id: {seq}\ndata: {_event_json(seq, event)}\n\n"


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that owns its feed (and the caller's stream slot, given
    back by `on_close` when the response ends)."""

    def __init__(
        self,
        feed: EventFeed,
        heartbeat_seconds: float,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(
            _sse_body(feed, heartbeat_seconds),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.feed = feed
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The response may end by cancellation (client gone): clean up regardless.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SSE_CLOSE_TIMEOUT):
                try:
                    await self.feed.close()
                finally:
                    if self.on_close is not None:
                        await self.on_close()


# --- WebSocket ----------------------------------------------------------------------------------


async def _send_events(websocket: WebSocket, feed: EventFeed) -> None:
    while True:
        seq, event = await feed.next()
        await websocket.send_text(_event_json(seq, event))


async def serve_events(websocket: WebSocket, state: AppState) -> None:
    async def session() -> None:
        caller = await socket.caller_of(websocket, state)
        since = socket.optional_int_param(websocket, "since", 0, 10**18)
        async with socket.holding_socket(
            state.usage, Held.STREAMS, caller.user_id, state.settings.max_streams_per_user
        ):
            await _serve_feed(websocket, state, caller.user_id, since)

    await socket.serve(websocket, session)


async def _serve_feed(websocket: WebSocket, state: AppState, owner_id: uuid.UUID, since: int | None) -> None:
    """Send the owner's events from `since` until the client goes away or falls behind."""
    feed = EventFeed(state.js, subjects.events_of_owner(owner_id), StartAt(after_seq=since))
    try:
        await feed.open()
    except Unavailable as exc:
        raise CloseSocket(WsClose.INTERNAL_ERROR, exc.message) from None
    try:
        sender = asyncio.create_task(_send_events(websocket, feed))
        reader = asyncio.create_task(socket.until_disconnected(websocket, socket.ignore))
        if sender in await socket.until_first(sender, reader):
            try:
                sender.result()
            except FeedOverflow:
                raise CloseSocket(WsClose.TRY_AGAIN_LATER, "The client reads too slowly.") from None
    finally:
        await feed.close()
