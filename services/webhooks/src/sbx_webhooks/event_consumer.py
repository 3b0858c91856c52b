"""The webhooks service's durable pull consumer `webhooks__events` on SBX_EVT (FastStream).

Binds to the stream without declaring it. For each event the matching webhooks get a pending
delivery row, and only then is the event acked: a crash before the ack redelivers the event, and
the row's uniqueness on (webhook, event) keeps a second row from being made. Delivering is the
dispatcher's job, from the table. A database error is a negative ack with a delay (the event
comes back); there is no delivery limit, so no event is dropped while PostgreSQL is away.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import asyncpg
from faststream.middlewares import AckPolicy as Acking
from faststream.nats import PullSub
from faststream.nats.annotations import NatsMessage
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.broker import WorkerBroker, bound_stream
from sbx_common.messages import SandboxEvent
from sbx_common.nats_permissions import WEBHOOKS_CONSUMER
from sbx_common.timeutil import rfc3339
from sbx_common.topology import STREAM_EVT

from sbx_webhooks import repository
from sbx_webhooks.metrics import RECORDED

logger = logging.getLogger(__name__)

DURABLE = WEBHOOKS_CONSUMER
ACK_WAIT = 30.0
RETRY_DELAYS = [1.0, 2.0, 5.0, 10.0, 30.0]
FETCH_WAIT = 2.0


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        # Webhooks see events from when the service first ran on.
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT,
        max_deliver=-1,
    )


def event_body(stream_seq: int, event: SandboxEvent) -> bytes:
    """The event object of the API (`{id, type, sandboxId, status, occurredAt, data}`), `id`
    being the event's position in SBX_EVT: the same for every redelivery of the event."""
    data = dict(event.data)
    if event.reason is not None:
        data.setdefault("reason", event.reason)
    obj = {
        "id": str(stream_seq),
        "type": event.type,
        "sandboxId": str(event.sandbox_id),
        "status": event.status.value,
        "occurredAt": rfc3339(event.occurred_at),
        "data": data,
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def subscribe_events(broker: WorkerBroker, pool: asyncpg.Pool, recorded: Callable[[], None]) -> None:
    """Register the consumer on `broker`; `recorded` is called when new deliveries are due."""

    @broker.subscriber(
        subjects.EVT_ALL,
        stream=bound_stream(STREAM_EVT),
        durable=DURABLE,
        config=consumer_config(),
        pull_sub=PullSub(batch_size=20, timeout=FETCH_WAIT),
        inbox_prefix=broker.inbox_prefix,
        ack_policy=Acking.MANUAL,
    )
    async def on_event(message: NatsMessage) -> None:
        try:
            await _handle(message, pool, recorded)
        except NatsError as exc:  # an ack lost with the connection: redelivered, recorded once
            logger.warning("event ack failed", extra={"error": repr(exc)})


async def _handle(message: NatsMessage, pool: asyncpg.Pool, recorded: Callable[[], None]) -> None:
    msg = message.raw_message
    try:
        event = SandboxEvent.model_validate_json(msg.data)
    except ValidationError:
        logger.warning("malformed event terminated", extra={"subject": msg.subject})
        await message.reject()
        return
    try:
        async with pool.acquire() as conn, conn.transaction():
            webhook_ids = await repository.matching_webhooks(conn, event.owner_id, event.type)
            count = (
                await repository.record(
                    conn,
                    webhook_ids,
                    str(msg.metadata.sequence.stream),
                    event_body(msg.metadata.sequence.stream, event),
                )
                if webhook_ids
                else 0
            )
    except (asyncpg.PostgresError, OSError):
        logger.exception("recording deliveries failed", extra={"sandboxId": str(event.sandbox_id)})
        attempt = msg.metadata.num_delivered or 1
        await message.nack(delay=RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])
        return
    await message.ack()
    if count:
        RECORDED.inc(count)
        recorded()
