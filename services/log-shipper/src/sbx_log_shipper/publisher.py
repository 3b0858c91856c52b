"""Publishing stored lines to `SBX_LOG` for live readers.

PostgreSQL is the record; the stream is the live feed. Publishing therefore never holds up
storing: each sandbox has a bounded queue of stored batches and its own publishing task. If
NATS is away for long enough to fill the queue, the oldest batches are dropped from the live
feed (never from the database): a live reader that sees `seq` jump reads the missing lines
from PostgreSQL. Published with nats-py: a batch is sized to the server's max_payload, which
also counts the headers FastStream would add to each message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from prometheus_client import Counter
from sbx_common import subjects
from sbx_common.messages import LogBatch, LogLine
from sbx_common.tasks import cancel_and_wait
from sbx_common.topology import STREAM_LOG

logger = logging.getLogger(__name__)

BATCHES_PUBLISHED = Counter("log_shipper_batches_published_total", "Log batches published to SBX_LOG")
BATCHES_DROPPED = Counter(
    "log_shipper_batches_dropped_total", "Stored log batches left out of the live feed (NATS unavailable)"
)

# Text bytes per NATS message (the server's default max payload is 1 MiB; JSON adds escaping).
MESSAGE_TEXT_BYTES = 256 * 1024
PUBLISH_ATTEMPTS = 5
PUBLISH_TIMEOUT = 2.0


def message_id(sandbox_id: uuid.UUID, lines: list[LogLine]) -> str:
    return f"{sandbox_id}:{lines[0].seq}-{lines[-1].seq}"


def split_for_messages(lines: list[LogLine], max_text_bytes: int = MESSAGE_TEXT_BYTES) -> list[list[LogLine]]:
    """Consecutive groups of lines whose text stays within one NATS message."""
    groups: list[list[LogLine]] = []
    current: list[LogLine] = []
    size = 0
    for line in lines:
        cost = len(line.text) * 2 + 96  # escaping and per-line JSON overhead, roughly
        if current and size + cost > max_text_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(line)
        size += cost
    if current:
        groups.append(current)
    return groups


class SandboxPublisher:
    """The live feed of one sandbox: a bounded queue of stored batches, published in order."""

    def __init__(
        self, js: JetStreamContext, sandbox_id: uuid.UUID, max_payload: int, max_queued_batches: int = 256
    ) -> None:
        self.js = js
        self.max_payload = max_payload
        self.sandbox_id = sandbox_id
        self.subject = subjects.log(sandbox_id)
        self._queue: deque[list[LogLine]] = deque()
        self._max_queued = max_queued_batches
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def submit(self, lines: list[LogLine]) -> None:
        if len(self._queue) >= self._max_queued:
            self._queue.popleft()
            BATCHES_DROPPED.inc()
        self._queue.append(lines)
        self._idle.clear()
        self._ready.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"publish-{self.sandbox_id}")

    async def drain(self, seconds: float) -> None:
        """Give queued batches up to `seconds` to go out, then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._idle.wait()
        await self.close()

    async def close(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                # Everything queued goes out together: fewer, larger messages under load.
                lines: list[LogLine] = []
                while self._queue:
                    lines.extend(self._queue.popleft())
                for group in split_for_messages(lines):
                    await self._publish(group)
            self._idle.set()

    async def _publish(self, lines: list[LogLine]) -> None:
        data = LogBatch(sandbox_id=self.sandbox_id, lines=lines).to_bytes()
        if len(data) > self.max_payload and len(lines) > 1:
            half = len(lines) // 2
            await self._publish(lines[:half])
            await self._publish(lines[half:])
            return
        headers = {"Nats-Msg-Id": message_id(self.sandbox_id, lines)}
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                await self.js.publish(
                    self.subject, data, timeout=PUBLISH_TIMEOUT, stream=STREAM_LOG, headers=headers
                )
            except (TimeoutError, NatsError) as exc:
                # A retry carries the same Nats-Msg-Id: JetStream drops it if the first arrived.
                if attempt == PUBLISH_ATTEMPTS:
                    BATCHES_DROPPED.inc()
                    logger.warning(
                        "log batch left out of the live feed",
                        extra={"msgId": headers["Nats-Msg-Id"], "error": repr(exc)},
                    )
                    return
                await asyncio.sleep(min(0.2 * attempt, 1.0))
            else:
                BATCHES_PUBLISHED.inc()
                return
