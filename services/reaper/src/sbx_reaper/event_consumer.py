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
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.consumer_lag import start_lag_export
from sbx_common.messages import SandboxEvent
from sbx_common.topology import STREAM_EVT

logger = logging.getLogger(__name__)

DURABLE = "reaper__events"
ACK_WAIT = 30.0
BACKOFF = [1.0, 5.0, 15.0]
MAX_DELIVER = len(BACKOFF) + 1

Handler = Callable[[SandboxEvent], Awaitable[None]]


class EventConsumer:
    def __init__(self, js: JetStreamContext, handler: Handler) -> None:
        self._js = js
        self._handler = handler
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None

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
        self._lag = start_lag_export(self._js, STREAM_EVT, DURABLE)

    async def stop(self) -> None:
        for task in (self._task, self._lag):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()

    async def _run(self) -> None:
        assert self._sub is not None
        while True:
            try:
                messages = await self._sub.fetch(batch=64, timeout=2)
            except TimeoutError:  # nothing new (nats-py raises its own and asyncio's)
                messages = []
            except NatsError as exc:
                logger.warning("event fetch failed", extra={"error": repr(exc)})
                await asyncio.sleep(1)
                continue
            try:
                for msg in messages:
                    await self._handle(msg)
            except NatsError as exc:  # an ack lost with the connection: redelivered later
                logger.warning("event ack failed", extra={"error": repr(exc)})

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
