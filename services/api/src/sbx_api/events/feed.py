"""A subscriber's view of SBX_EVT: an ephemeral, ordered JetStream consumer.

The filter subject carries the owner (`sbx.evt.<owner>.>` or `sbx.evt.<owner>.<sandbox>.*`), so
the server only ever delivers the caller's own events. Each event's stream sequence is its id:
resuming "after event N" is a consumer starting at sequence N + 1. Closing the feed deletes its
consumer at once (the server would also drop it after `INACTIVE_THRESHOLD` without interest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common.errors import Unavailable
from sbx_common.messages import SandboxEvent
from sbx_common.topology import STREAM_EVT

logger = logging.getLogger(__name__)

INACTIVE_THRESHOLD = 30.0  # seconds: the server's own clean-up of a consumer nobody reads
IDLE_HEARTBEAT = 5.0  # seconds: lets the client notice a stalled consumer and recreate it


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
