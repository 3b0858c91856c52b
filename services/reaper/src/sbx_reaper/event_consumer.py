"""The reaper's durable pull consumer `reaper__events` on SBX_EVT, a FastStream pull subscriber.

Binds to the stream without declaring it; the consumer is created with `consumer_config()` when
it does not exist yet. Events are taken one at a time, in order, and handed to a handler (the
TTL timers); a handler error is retried with backoff (a negative ack with the attempt's delay),
and a message that still fails after `MAX_DELIVER` deliveries is given up on: nothing is lost by
that, because the periodic sweep reads the same facts from the database. Malformed events are
terminated at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from faststream.middlewares import AckPolicy as Acking
from faststream.nats import PullSub
from faststream.nats.annotations import NatsMessage
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.broker import WorkerBroker, bound_stream
from sbx_common.messages import SandboxEvent
from sbx_common.nats_permissions import REAPER_CONSUMER
from sbx_common.topology import STREAM_EVT

logger = logging.getLogger(__name__)

DURABLE = REAPER_CONSUMER
ACK_WAIT = 30.0
BACKOFF = [1.0, 5.0, 15.0]
MAX_DELIVER = len(BACKOFF) + 1
FETCH_WAIT = 2.0  # seconds one fetch waits for an event

Handler = Callable[[SandboxEvent], Awaitable[None]]


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        # The start-up sweep covers what happened before the consumer first existed.
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT,
        max_deliver=MAX_DELIVER,
        backoff=BACKOFF,
    )


def subscribe_events(broker: WorkerBroker, handler: Handler) -> None:
    """Register the consumer on `broker`; it consumes once the broker starts."""

    @broker.subscriber(
        subjects.EVT_ALL,
        stream=bound_stream(STREAM_EVT),
        durable=DURABLE,
        config=consumer_config(),
        pull_sub=PullSub(batch_size=1, timeout=FETCH_WAIT),  # one at a time, in order
        inbox_prefix=broker.inbox_prefix,
        ack_policy=Acking.MANUAL,
    )
    async def on_event(message: NatsMessage) -> None:
        try:
            await _handle(message, handler)
        except NatsError as exc:  # an ack lost with the connection: redelivered later
            logger.warning("event ack failed", extra={"error": repr(exc)})


async def _handle(message: NatsMessage, handler: Handler) -> None:
    msg = message.raw_message
    try:
        event = SandboxEvent.model_validate_json(msg.data)
    except ValidationError:
        logger.warning("malformed event terminated", extra={"subject": msg.subject})
        await message.reject()
        return
    try:
        await handler(event)
    except Exception:
        logger.exception("event handling failed", extra={"sandboxId": str(event.sandbox_id)})
        attempt = msg.metadata.num_delivered or 1
        await message.nack(delay=BACKOFF[min(attempt, len(BACKOFF)) - 1])
        return
    await message.ack()
