"""`/ws/sandboxes/{id}/logs`: stored lines, then live ones, without a gap or a repeat.

Order of work: subscribe to the live feed (`sbx.log.<id>`, core NATS) and to the sandbox's
events, make sure the server has the subscriptions (flush), then read the past from
PostgreSQL. The log shipper stores a batch before it publishes it, so every line is either in
the database when the past is read or arrives live afterwards; lines are deduplicated by `seq`.
A live batch that starts past the next expected `seq` (a batch the shipper could not publish,
or missed during a reconnect) is completed from PostgreSQL before it is sent, and a quiet feed
is compared with the store every CATCH_UP_SECONDS, so a missed last batch arrives too.

Past lines: with `since`, every stored line after that seq, read and sent a page
(STORE_PAGE_LINES) at a time so memory stays flat whatever the history's size; otherwise the
newest `tail` (default 100, 0 for none). Each socket has a bounded buffer (SBX_WS_LOG_BUFFER_LINES): a client
that falls further behind is closed with 1013, so it never slows the shipper or other clients.
Slow means the client does not take what it is sent: the buffer holds only live lines not
sent yet (lines already sent, which the shipper republishes after a NATS reconnect, are not
queued again), and it overflows only while a send waits for the client. While the socket reads
the store (the past, or lines it missed), and when the buffer is full while the sender is busy
rather than waiting for the client (a burst after a reconnect, a busy machine), live batches
are left to the store, which the sender reads again up to the newest line published.
A `status` frame follows each state change. Once the sandbox is destroyed or expired (already
when the socket opens, or meanwhile), its last lines are sent, then its status, and the socket
closes with 1000.

With `batch=true` (an addition to the contract, opt-in) the lines go as `{type: "logs", lines:
[...]}` frames, each holding the consecutive lines that were ready together (at most
FRAME_LINES, about FRAME_BYTES): at thousands of lines a second one frame per line costs the
API and the client a WebSocket message each, and the socket fell seconds behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from typing import Any, NoReturn

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sbx_common import subjects
from sbx_common.codes import WsClose
from sbx_common.status import TERMINAL
from sbx_common.timeutil import rfc3339
from starlette.websockets import WebSocket

from sbx_api.state import AppState
from sbx_api.streams import repository, socket
from sbx_api.streams.repository import StoredLine
from sbx_api.streams.schemas import log_batch_frame_json, log_frame_json, log_line_json, millis, status_frame
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

DEFAULT_TAIL = 100
CATCH_UP_SECONDS = 2.0  # quiet live feed: compare with the store this often
MAX_TAIL = 10_000
STORE_PAGE_LINES = 1_000  # stored lines read at once (`since` and catching up)
# The log shipper stores a container's last lines when its log stream ends, which can be a
# moment after the orchestrator records the sandbox's end: an ended sandbox's store is read
# again after this long, for as long as it still grows, before the socket closes.
SETTLE_SECONDS = 0.2
_TERMINAL = frozenset(s.value for s in TERMINAL)
# A batch frame holds at most this many lines, and is closed once its JSON passes FRAME_BYTES
# (a line is at most 16 KiB of text, so a frame stays far below clients' usual 1 MiB limit).
FRAME_LINES = 1_000
FRAME_BYTES = 256 * 1024
_STREAMS = frozenset(("stdout", "stderr"))

# A line on its way to the client: its seq and its JSON object `{seq, stream, text, timestamp}`.
Line = tuple[int, str]


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def live_lines(data: bytes) -> list[dict[str, Any]]:
    """The lines of a `LogBatch` message as parsed JSON, [] for a malformed one. Checked by
    hand, not as the pydantic model: a model object per line was the socket's largest cost."""
    try:
        batch = json.loads(data)
        lines = batch["lines"]
        for line in lines:
            if not (
                type(line["seq"]) is int
                and line["stream"] in _STREAMS
                and type(line["text"]) is str
                and type(line["timestamp"]) is str
            ):
                return []
    except (ValueError, TypeError, KeyError):
        return []
    return lines if type(lines) is list else []


def encode_live(line: dict[str, Any]) -> Line:
    seq: int = line["seq"]
    return seq, log_line_json(seq, line["stream"], line["text"], millis(line["timestamp"]))


def encode_stored(line: StoredLine) -> Line:
    stamp = rfc3339(line.ts)
    assert stamp is not None
    return line.seq, log_line_json(line.seq, line.stream, line.text, stamp)


class LogTail:
    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        owner_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        *,
        batch: bool = False,
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.owner_id = owner_id
        self.sandbox_id = sandbox_id
        self.batch = batch
        self.max_buffered = state.settings.ws_log_buffer_lines
        self._queue: deque[list[Line] | str] = deque()
        self._buffered = 0
        self._sent = 0  # the newest seq sent (or being sent): live lines up to it are not queued
        # While the sender reads the store, a live batch only moves `_announced` (its lines are
        # stored before they are published) and the sender reads the store again up to it.
        self._reading_store = True
        self._announced = 0
        self._sending = False  # a send is waiting for the client to take a frame
        self._wakeup = asyncio.Event()
        self._overflow = asyncio.Event()

    async def run(self, tail: int, since: int | None) -> None:
        nc = self.state.nc
        subscriptions: list[Subscription] = []
        try:
            try:
                subscriptions.append(await nc.subscribe(subjects.log(self.sandbox_id), cb=self._on_batch))
                subscriptions.append(
                    await nc.subscribe(
                        subjects.events_of_sandbox(self.owner_id, self.sandbox_id), cb=self._on_event
                    )
                )
                await nc.flush(timeout=5)
            except (nats.errors.Error, TimeoutError) as exc:
                raise CloseSocket(WsClose.INTERNAL_ERROR, "The log stream is unavailable.") from exc
            last, status = await self._send_past(tail, since)
            if status in _TERMINAL:
                await self._finish(last, status)
            await self._follow(last)
        finally:
            for subscription in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def _send_past(self, tail: int, since: int | None) -> tuple[int, str | None]:
        """Send the past lines; the last seq sent (or skipped), and the status read before them."""
        async with socket.database(self.state, "The log store is unavailable.") as conn:
            # Read after subscribing, so an end after this read arrives as an event; read
            # before the lines, so an ended sandbox's lines are all there.
            status = await repository.sandbox_status(conn, self.sandbox_id, self.owner_id)
            if since is not None:
                lines = []
                last = since
            elif tail > 0:
                lines = await repository.log_lines(conn, self.sandbox_id, limit=tail)
                last = 0
            else:
                lines = []
                last = await repository.last_seq(conn, self.sandbox_id)
        last = await self._send_stored(lines, last)
        if since is not None:
            last = await self._send_pages(last)  # however long the history: a page at a time
        return last, status

    async def _finish(self, last: int, status: str) -> NoReturn:
        """The sandbox ended: its last lines, its status, then 1000."""
        while True:
            await asyncio.sleep(SETTLE_SECONDS)
            caught_up = await self._catch_up(last)
            if caught_up == last:
                break
            last = caught_up
        await self._send(status_frame(status))
        raise CloseSocket(WsClose.NORMAL, f"The sandbox is {status}.")

    async def _follow(self, last: int) -> None:
        sender = asyncio.create_task(self._send_live(last))
        reader = asyncio.create_task(socket.until_disconnected(self.websocket, socket.ignore))
        overflow = asyncio.create_task(self._overflow.wait())
        done = await socket.until_first(sender, reader, overflow)
        if overflow in done:
            raise CloseSocket(WsClose.TRY_AGAIN_LATER, "The client reads too slowly.")
        if sender in done:
            sender.result()  # raises the reason it ended

    async def _send_live(self, last: int) -> None:
        self._reading_store = False
        self._sent = max(self._sent, last)
        while True:
            if self._announced > last:  # left to the store: published while it was read, or not queued
                last = await self._send_missing(last)
            try:
                await asyncio.wait_for(self._wakeup.wait(), CATCH_UP_SECONDS)
            except TimeoutError:
                # Also how an end whose event was missed (a NATS reconnect) is noticed.
                status = await self._status()
                last = await self._catch_up(last)
                if status in _TERMINAL:
                    await self._finish(last, status)
                continue
            self._wakeup.clear()
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, str):
                    if item in _TERMINAL:
                        await self._finish(last, item)
                    await self._send(status_frame(item))
                    continue
                self._buffered -= len(item)
                fresh = [line for line in item if line[0] > last]
                if not fresh:
                    continue
                if fresh[0][0] > last + 1:
                    last = await self._send_missing(last)  # the store has this batch too
                    fresh = [line for line in fresh if line[0] > last]
                    if not fresh:
                        continue
                if self.batch:
                    self._take_following(fresh)
                self._sent = fresh[-1][0]
                await self._send_lines(fresh)
                last = fresh[-1][0]

    async def _status(self) -> str | None:
        async with socket.database(self.state, "The database is unavailable.") as conn:
            return await repository.sandbox_status(conn, self.sandbox_id, self.owner_id)

    async def _catch_up(self, last: int) -> int:
        """No live batch for a while: make sure none was missed (one the shipper stored but could
        not publish, e.g. while NATS restarted, with nothing published after it)."""
        async with socket.database(self.state, "The log store is unavailable.") as conn:
            stored = await repository.last_seq(conn, self.sandbox_id)
        return await self._send_missing(last) if stored > last else last

    async def _send_missing(self, last: int) -> int:
        """Stored lines after `last` (every published line is stored first), read again until
        they reach the newest line published meanwhile; the last seq sent."""
        self._reading_store = True
        try:
            return await self._send_pages(last)
        finally:
            self._reading_store = False

    async def _send_pages(self, last: int) -> int:
        """Send stored lines after `last`, STORE_PAGE_LINES per read (memory stays bounded however
        long the history), until the store has nothing newer than what was published."""
        while True:
            async with socket.database(self.state, "The log store is unavailable.") as conn:
                lines = await repository.log_lines(conn, self.sandbox_id, after=last, limit=STORE_PAGE_LINES)
            last = await self._send_stored(lines, last)
            if not lines or (len(lines) < STORE_PAGE_LINES and last >= self._announced):
                return last

    async def _send_stored(self, lines: list[StoredLine], last: int) -> int:
        """Send lines read from the store; the seq of the last one (`last` when there are none)."""
        if not lines:
            return last
        self._sent = max(self._sent, lines[-1].seq)
        await self._send_lines([encode_stored(line) for line in lines])
        return lines[-1].seq

    def _take_following(self, lines: list[Line]) -> None:
        """Batch mode: append to `lines` the queued live batches that continue them, so that what
        arrived while the last frame was sent goes out as one frame. Stops at a status change
        (it must follow the lines before it) and at anything not consecutive (the usual path
        deduplicates it or reads the gap from the store)."""
        queue = self._queue
        while queue and len(lines) < FRAME_LINES:
            item = queue[0]
            if isinstance(item, str) or not item or item[0][0] != lines[-1][0] + 1:
                return
            queue.popleft()
            self._buffered -= len(item)
            lines.extend(item)

    async def _send_lines(self, lines: list[Line]) -> None:
        """Consecutive lines: a frame each, or with `batch` as few batch frames as fit."""
        if not self.batch:
            for _seq, line in lines:
                await self._send_text(log_frame_json(line))
            return
        start = size = 0
        for i, (_seq, line) in enumerate(lines):
            size += len(line)
            if i + 1 - start >= FRAME_LINES or size >= FRAME_BYTES or i + 1 == len(lines):
                await self._send_text(log_batch_frame_json([text for _s, text in lines[start : i + 1]]))
                start, size = i + 1, 0

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_text(_dumps(frame))

    async def _send_text(self, text: str) -> None:
        """Send a frame; a send that has to wait is waiting for the client to read."""
        self._sending = True
        try:
            await self.websocket.send_text(text)
        finally:
            self._sending = False

    async def _on_batch(self, msg: Msg) -> None:
        received = live_lines(msg.data)
        if not received:
            return
        self._announced = max(self._announced, received[-1]["seq"])
        if self._reading_store:
            lines: list[Line] = []
            behind = self._announced - self._sent
        else:
            sent = self._sent
            lines = [encode_live(line) for line in received if line["seq"] > sent]
            behind = self._buffered + len(lines)
        if behind > self.max_buffered:
            # Slow only if the sender is waiting for the client; a busy sender reads these
            # lines from the store once it gets to them.
            if self._sending:
                self._overflow.set()
            return
        if not lines:
            return  # being read from the store, or sent already (republished after a reconnect)
        self._buffered += len(lines)
        self._queue.append(lines)
        self._wakeup.set()

    async def _on_event(self, msg: Msg) -> None:
        self._queue.append(msg.subject.rsplit(".", 1)[-1])
        self._wakeup.set()


async def serve_logs(websocket: WebSocket, state: AppState, raw_sandbox_id: str) -> None:
    async def session() -> None:
        caller = await socket.caller_of(websocket, state)
        sandbox_id, _status = await socket.owned_sandbox(state, caller, raw_sandbox_id)
        since = socket.optional_int_param(websocket, "since", 0, 2**62)
        tail = socket.int_param(websocket, "tail", DEFAULT_TAIL, 0, MAX_TAIL)
        batch = socket.bool_param(websocket, "batch")
        async with socket.holding_socket(
            state.usage, Held.STREAMS, caller.user_id, state.settings.max_streams_per_user
        ):
            await LogTail(websocket, state, caller.user_id, sandbox_id, batch=batch).run(tail, since)

    await socket.serve(websocket, session)
