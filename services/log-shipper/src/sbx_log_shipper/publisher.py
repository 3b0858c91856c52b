"""Publishing stored lines to `SBX_LOG` for live readers.

PostgreSQL is the record; the stream is the live feed. Publishing therefore never holds up
storing: each sandbox has a bounded queue of stored batches and its own publishing task. If
NATS is away for long enough to fill the queue, the oldest batches are dropped from the live
feed (never from the database): a live reader that sees `seq` jump reads the missing lines
from PostgreSQL.

Messages are published without waiting for each ack: up to MAX_IN_FLIGHT per sandbox are
sent, in order, before the oldest ack is awaited (on the busy development machine an ack took
up to 25-45 ms at p99, longer than storing a batch, and every batch stored meanwhile waited
for it). A message whose ack
fails is sent again with the same `Nats-Msg-Id`, so JetStream keeps it once; it can then land
after a later message, which live readers handle as any gap (the lines are read from the store,
and the late repeat is dropped by `seq`). Published with nats-py: a batch is sized to the
server's max_payload, which also counts the headers FastStream would add to each message.

Stored lines are encoded straight into `LogBatch`'s JSON (`encode_batch`), without a pydantic
object (or a datetime) per line: building and dumping those took a third of the shipper's CPU
at tens of thousands of lines a second. It is the `LogBatch` model's JSON (the API reads it with
`json.loads` and a check per line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC
from json.encoder import encode_basestring

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from prometheus_client import Counter
from sbx_common import subjects
from sbx_common.jspublish import publish_acked
from sbx_common.tasks import cancel_and_wait
from sbx_common.topology import STREAM_LOG

from sbx_log_shipper.frames import RawLine, parse_timestamp

logger = logging.getLogger(__name__)

BATCHES_PUBLISHED = Counter("log_shipper_batches_published_total", "Log batches published to SBX_LOG")
BATCHES_DROPPED = Counter(
    "log_shipper_batches_dropped_total", "Stored log batches left out of the live feed (NATS unavailable)"
)

# Text bytes per NATS message (the server's default max payload is 1 MiB; JSON adds escaping).
MESSAGE_TEXT_BYTES = 256 * 1024
# How long a batch may keep trying (`sbx_common.jspublish`): past a leader election of SBX_LOG
# when a NATS server of a cluster is lost (4 to 9 s). Only this sandbox's feed waits meanwhile;
# its queue is bounded, and the lines are in PostgreSQL already.
PUBLISH_BUDGET = 15.0
MAX_IN_FLIGHT = 4  # messages of one sandbox sent and not yet acknowledged


def message_id(sandbox_id: uuid.UUID, first_seq: int, count: int) -> str:
    return f"{sandbox_id}:{first_seq}-{first_seq + count - 1}"


def json_timestamp(ts_raw: str) -> str:
    """Docker's timestamp as the messages write it: RFC 3339, UTC, at most microseconds.

    Docker writes `2026-12-02T05:43:03.123456789Z` with trailing zeros of the fraction left out;
    keeping at most six digits truncates it exactly as `frames.parse_timestamp` (and so the
    stored line) does, without a datetime per line. Any other form goes through the datetime.
    """
    if len(ts_raw) >= 20 and ts_raw[19] in ".Z" and ts_raw.endswith("Z"):
        return ts_raw[:-1][:26] + "Z"
    stamp = parse_timestamp(ts_raw).astimezone(UTC)
    return stamp.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def encode_batch(sandbox_id: uuid.UUID, first_seq: int, lines: Sequence[RawLine]) -> bytes:
    """The JSON of `LogBatch(sandbox_id, lines)` for stored lines numbered from `first_seq`.

    Written directly: text is escaped by the json module's C encoder (UTF-8 kept as is, control
    characters as `\\uXXXX`), as pydantic writes it; `tests/streams/test_log_encoding.py` holds
    the two equal.
    """
    text, stamp = encode_basestring, json_timestamp
    body = ",".join(
        [
            f'{{"seq":{seq},"stream":"{line.stream}","text":{text(line.text)},'
            f'"timestamp":"{stamp(line.ts_raw)}"}}'
            for seq, line in zip(range(first_seq, first_seq + len(lines)), lines, strict=True)
        ]
    )
    return f'{{"version":1,"sandboxId":"{sandbox_id}","lines":[{body}]}}'.encode()


def split_for_messages(lines: Sequence[RawLine], max_text_bytes: int = MESSAGE_TEXT_BYTES) -> list[range]:
    """Consecutive ranges of `lines` whose text stays within one NATS message."""
    # Most batches fit whole: one sum over the lengths instead of the loop below.
    if sum([len(line.text) for line in lines]) * 2 + 96 * len(lines) <= max_text_bytes:
        return [range(len(lines))]
    groups: list[range] = []
    start = size = 0
    for i, line in enumerate(lines):
        cost = len(line.text) * 2 + 96  # escaping and per-line JSON overhead, roughly
        if i > start and size + cost > max_text_bytes:
            groups.append(range(start, i))
            start, size = i, 0
        size += cost
    if start < len(lines):
        groups.append(range(start, len(lines)))
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
        # Stored batches: the seq of the first line, and the lines (consecutive seqs).
        self._queue: deque[tuple[int, list[RawLine]]] = deque()
        self._max_queued = max_queued_batches
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def submit(self, first_seq: int, lines: list[RawLine]) -> None:
        """Queue stored lines, numbered from `first_seq`, for the live feed (kept, not copied)."""
        if len(self._queue) >= self._max_queued:
            self._queue.popleft()
            BATCHES_DROPPED.inc()
        self._queue.append((first_seq, lines))
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
        in_flight: deque[asyncio.Task[None]] = deque()
        try:
            while True:
                if not self._queue:
                    if in_flight:  # nothing new to send: collect the acks
                        await in_flight.popleft()
                        continue
                    self._idle.set()
                    await self._ready.wait()
                    self._ready.clear()
                    continue
                # Everything queued goes out together: fewer, larger messages under load.
                # Queued batches are consecutive: only the oldest are ever dropped.
                first_seq, lines = self._queue.popleft()
                lines = list(lines)
                while self._queue:
                    lines.extend(self._queue.popleft()[1])
                for group in split_for_messages(lines):
                    while len(in_flight) >= MAX_IN_FLIGHT:
                        await in_flight.popleft()
                    # Tasks start in the order they are made, and each sends its message
                    # before its first wait: the messages leave in `seq` order.
                    publish = self._publish(first_seq + group.start, lines[group.start : group.stop])
                    in_flight.append(asyncio.create_task(publish))
        finally:
            await cancel_and_wait(list(in_flight))

    async def _publish(self, first_seq: int, lines: list[RawLine]) -> None:
        data = encode_batch(self.sandbox_id, first_seq, lines)
        if len(data) > self.max_payload and len(lines) > 1:
            half = len(lines) // 2
            await self._publish(first_seq, lines[:half])
            await self._publish(first_seq + half, lines[half:])
            return
        headers = {"Nats-Msg-Id": message_id(self.sandbox_id, first_seq, len(lines))}
        try:
            # A retry carries the same Nats-Msg-Id: JetStream drops it if an earlier try arrived.
            await publish_acked(
                self.js, self.subject, data, headers=headers, budget=PUBLISH_BUDGET, stream=STREAM_LOG
            )
        except (TimeoutError, NatsError) as exc:
            BATCHES_DROPPED.inc()
            logger.warning(
                "log batch left out of the live feed",
                extra={"msgId": headers["Nats-Msg-Id"], "error": repr(exc)},
            )
        else:
            BATCHES_PUBLISHED.inc()
