"""The reaper's durable pull consumer `reaper__events` on SBX_EVT.

Binds to the stream without declaring it. Each event is handed to a handler (the TTL timers);
a handler error is retried with backoff, and a message that still fails after `MAX_DELIVER`
deliveries is given up on: nothing is lost by that, because the periodic sweep reads the same
facts from the database. Malformed events are terminated at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.messages import SandboxEvent
from sbx_common.topology import STREAM_EVT

from sbx_reaper import metrics

logger = logging.getLogger(__name__)

DURABLE = "reaper__events"
ACK_WAIT = 30.0
BACKOFF = [1.0, 5.0, 15.0]
MAX_DELIVER = len(BACKOFF) + 1
PENDING_EVERY = 5.0  # seconds between two updates of the pending gauge

Handler = Callable[[SandboxEvent], Awaitable[None]]


class EventConsumer:
    def __init__(self, js: JetStreamContext, handler: Handler) -> None:
        self._js = js
        self._handler = handler
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending_at = 0.0

    async def start(self) -> None:
        self._sub = await self._js.pull_subscribe(
            subjects.EVT_ALL,
            durable=DURABLE,
            stream=STREAM_EVT,
            config=ConsumerConfig(
                # The start-up sweep covers what happened before the consumer first existed.
                deliver_policy=DeliverPolicy.NEW,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT,
                max_deliver=MAX_DELIVER,
                backoff=BACKOFF,
            ),
        )
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()

    async def _run(self) -> None:
        assert self._sub is not None
        while True:
            try:
                messages = await self._sub.fetch(batch=64, timeout=2)
            except NatsTimeoutError:
                messages = []
            except NatsError as exc:
                logger.warning("event fetch failed", extra={"error": repr(exc)})
                await asyncio.sleep(1)
                continue
            for msg in messages:
                await self._handle(msg)
            await self._update_pending()

    async def _handle(self, msg: Msg) -> None:
        try:
            event = SandboxEvent.model_validate_json(msg.data)
        except ValidationError:
            logger.warning("malformed event terminated", extra={"subject": msg.subject})
            await msg.term()
            return
        try:
            await self._handler(event)
        except Exception:
            logger.exception("event handling failed", extra={"sandboxId": str(event.sandbox_id)})
            attempt = msg.metadata.num_delivered or 1
            await msg.nak(delay=BACKOFF[min(attempt, len(BACKOFF)) - 1])
            return
        await msg.ack()

    async def _update_pending(self) -> None:
        now = time.monotonic()
        if now - self._pending_at < PENDING_EVERY or self._sub is None:
            return
        self._pending_at = now
        try:
            info = await self._sub.consumer_info()
        except NatsError:
            return
        metrics.CONSUMER_PENDING.labels(DURABLE).set(info.num_pending or 0)
