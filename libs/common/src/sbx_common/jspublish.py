"""Publishing to a JetStream stream through a leader election.

When the NATS server leading a replicated stream is lost, the stream has no leader until the
others elect one (JetStream's election timeout: about 4 to 9 seconds). Meanwhile a publish gets
"no responders" at once, or no acknowledgement. `publish_acked` tries again until its budget is
spent. A retry is safe only because every message carries a `Nats-Msg-Id`: if an earlier try
was stored after all, the stream drops the copy inside its duplicate window.
"""

from __future__ import annotations

import asyncio

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

MSG_ID = "Nats-Msg-Id"
# Each try waits at most this long for its ack: a stored message is acknowledged in a few
# milliseconds, so a longer wait means a leader is gone and another try may reach the new one.
ATTEMPT_TIMEOUT = 2.0
FIRST_WAIT = 0.05
MAX_WAIT = 0.5

# "No responders" (no leader), JetStream's own 503 (its API not ready), and an ack that did not
# come (the leader died after receiving it, or the connection is moving to another server).
TRANSIENT: tuple[type[BaseException], ...] = (
    NoStreamResponseError,
    ServiceUnavailableError,
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionReconnectingError,
)


async def publish_acked(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    headers: dict[str, str],
    budget: float,
    stream: str | None = None,
) -> PubAck:
    """Publish and return JetStream's ack, trying again on the transient errors above for up to
    `budget` seconds in all; the last error is raised once the budget is spent."""
    if MSG_ID not in headers:
        raise ValueError("a retried publish needs a Nats-Msg-Id, or a retry could store it twice")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    wait = FIRST_WAIT
    while True:
        remaining = deadline - loop.time()
        try:
            return await js.publish(
                subject,
                payload,
                timeout=max(0.05, min(ATTEMPT_TIMEOUT, remaining)),
                stream=stream,
                headers=dict(headers),
            )
        except TRANSIENT:
            if loop.time() + wait >= deadline:
                raise
        await asyncio.sleep(wait)
        wait = min(wait * 2, MAX_WAIT)
