"""HTTP/1.1 to a sandbox's port on raw asyncio streams (h11 for the framing), full duplex.

A client library that sends the whole request body before it reads the answer deadlocks on a
server that answers while it reads (an echo, a transcoder): both sides' socket buffers fill up.
Here the request body is written by a task of its own while the answer is read, so either side
may go first, and neither body is ever held whole.

Connections are kept per (address, port) for reuse by requests without a body, which can be
sent again on a fresh connection when a kept one turns out closed before any answer came;
requests with a body always open a fresh connection (their body cannot be replayed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11

READ_SIZE = 256 * 1024
MAX_HEAD_BYTES = 64 * 1024
IDLE_SECONDS = 30.0
MAX_IDLE_PER_TARGET = 32


class Unreachable(Exception):
    """Nothing accepted the connection, or it closed before an answer came."""


class TimedOut(Exception):
    """The sandbox took longer than the timeout to accept or to send its next bytes."""


@dataclass
class Connection:
    key: tuple[str, int]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(
        default_factory=lambda: h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    )
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def send(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> None:
        data = self.protocol.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: AsyncIterator[bytes]


class UpstreamPool:
    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def _connect(self, key: tuple[str, int]) -> Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(key[0], key[1], limit=READ_SIZE * 2)
        except TimeoutError:
            raise TimedOut from None
        except OSError as exc:
            raise Unreachable(str(exc)) from None
        return Connection(key, reader, writer)

    def _take_idle(self, key: tuple[str, int]) -> Connection | None:
        kept = self._idle.get(key) or []
        while kept:
            conn = kept.pop()
            if time.monotonic() - conn.idle_since < IDLE_SECONDS and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    def _give_back(self, conn: Connection) -> None:
        if conn.protocol.our_state is h11.DONE and conn.protocol.their_state is h11.DONE:
            conn.protocol.start_next_cycle()
            conn.idle_since = time.monotonic()
            kept = self._idle.setdefault(conn.key, [])
            if len(kept) < MAX_IDLE_PER_TARGET:
                kept.append(conn)
                return
        conn.close()

    async def aclose(self) -> None:
        for kept in self._idle.values():
            for conn in kept:
                conn.close()
        self._idle.clear()

    async def request(
        self,
        address: str,
        port: int,
        *,
        method: str,
        target: bytes,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> Reply:
        """Send the request and return once the answer's head is in; its body streams from
        `Reply.body` (the connection goes back to the pool, or is closed, when that ends)."""
        key = (address, port)
        request = h11.Request(method=method, target=target, headers=[("host", f"{address}:{port}"), *headers])
        if body is None:
            idle = self._take_idle(key)
            if idle is not None:
                with contextlib.suppress(Unreachable, ConnectionError):
                    return await self._exchange(idle, request, None)
        return await self._exchange(await self._connect(key), request, body)

    async def _exchange(
        self, conn: Connection, request: h11.Request, body: AsyncIterator[bytes] | None
    ) -> Reply:
        writer_task: asyncio.Task[None] | None = None
        try:
            await conn.send(request)
            if body is None:
                await conn.send(h11.EndOfMessage())
            else:
                writer_task = asyncio.create_task(self._write_body(conn, body))
            response = await self._read_head(conn)
        except BaseException:
            if writer_task is not None:
                writer_task.cancel()
                await asyncio.gather(writer_task, return_exceptions=True)
            conn.close()
            raise
        headers = [(bytes(name), bytes(value)) for name, value in response.headers]
        return Reply(response.status_code, headers, self._read_body(conn, writer_task))

    async def _write_body(self, conn: Connection, body: AsyncIterator[bytes]) -> None:
        async for chunk in body:
            await conn.send(h11.Data(data=chunk))
        await conn.send(h11.EndOfMessage())

    async def _next_event(self, conn: Connection) -> object:
        while True:
            event = conn.protocol.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(self.read_timeout):
                    data = await conn.reader.read(READ_SIZE)
            except TimeoutError:
                raise TimedOut from None
            conn.protocol.receive_data(data)
            if not data and conn.protocol.their_state is h11.SEND_RESPONSE:
                raise Unreachable("closed before answering")

    async def _read_head(self, conn: Connection) -> h11.Response:
        while True:
            try:
                event = await self._next_event(conn)
            except h11.RemoteProtocolError as exc:
                raise Unreachable(f"bad answer: {exc}") from None
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise Unreachable("closed before answering")
            # InformationalResponse (100 Continue ...): the answer is still to come.

    async def _read_body(
        self, conn: Connection, writer_task: asyncio.Task[None] | None
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            while True:
                event = await self._next_event(conn)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    finished = True
                    return
        finally:
            if writer_task is not None and not writer_task.done():
                # Answered before it read the whole body: that connection is done for.
                writer_task.cancel()
                finished = False
            if writer_task is not None:
                results = await asyncio.gather(writer_task, return_exceptions=True)
                if any(isinstance(r, BaseException) for r in results):
                    finished = False
            if finished:
                self._give_back(conn)
            else:
                conn.close()
