"""JetStream consumer lag on /metrics, under the same names for every service's durable consumer.

`jetstream_consumer_pending` counts the messages of the stream not yet delivered to the consumer,
`jetstream_consumer_ack_pending` those delivered and not yet acknowledged; both are labelled by
consumer. `export_lag` refreshes them from the server's consumer info until it is cancelled, so
an idle consumer shows a lag of 0 rather than nothing.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from prometheus_client import Gauge

logger = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between two readings

CONSUMER_PENDING = Gauge(
    "jetstream_consumer_pending",
    "Messages in the stream not yet delivered to the consumer (JetStream lag).",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "jetstream_consumer_ack_pending",
    "Messages delivered to the consumer and not yet acknowledged.",
    ["consumer"],
)


async def read_lag(js: JetStreamContext, stream: str, consumer: str) -> None:
    """Set both gauges of `consumer` from one consumer info request."""
    info = await js.consumer_info(stream, consumer)
    CONSUMER_PENDING.labels(consumer).set(info.num_pending or 0)
    CONSUMER_ACK_PENDING.labels(consumer).set(info.num_ack_pending or 0)


async def export_lag(js: JetStreamContext, stream: str, consumer: str, interval: float = INTERVAL) -> None:
    """Read the consumer's lag every `interval` seconds, until cancelled; a failed reading (NATS
    away, the consumer not created yet) keeps the last values."""
    while True:
        try:
            await read_lag(js, stream, consumer)
        except Exception as exc:
            logger.debug("consumer info failed", extra={"consumer": consumer, "error": repr(exc)})
        await asyncio.sleep(interval)


def start_lag_export(
    js: JetStreamContext, stream: str, consumer: str, interval: float = INTERVAL
) -> asyncio.Task[None]:
    """`export_lag` as a task of its own; cancel it to stop."""
    return asyncio.create_task(export_lag(js, stream, consumer, interval), name=f"lag-{consumer}")
