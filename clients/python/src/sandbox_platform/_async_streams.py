"""Live streams of the async client: the same behaviour as `_sync_streams`, on websockets' asyncio
client and httpx's async client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse import EventSource
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from sandbox_platform import _routes as routes
from sandbox_platform._core import ClientConfig
from sandbox_platform._sockets import (
    EVENTS_RECONNECT_STATUSES,
    READY,
    RECONNECT_POLICY,
    SOCKET_CLOSE_TIMEOUT,
    SOCKET_OPEN_TIMEOUT,
    WAIT_RECHECK_SECONDS,
    LogCursor,
    Ready,
    closed_code,
    event_of,
    gave_up,
    handshake_error,
    json_frame,
    must_reconnect,
    output_chunk,
    output_params,
)
from sandbox_platform._transport import AsyncTransport
from sandbox_platform.errors import SandboxPlatformError, error_from_close
from sandbox_platform.models import Event, LogLine, OutputChunk

T = TypeVar("T")
R = TypeVar("R")


class AsyncStream(Generic[T]):
    """An async iterator over a live stream that can be closed (`aclose()`, or `async with`).

    It connects when awaited (`stream = await sandbox.stream_logs()`) or entered (`async with`),
    else at the first `async for` step: what happens after it connected is in the stream."""

    def __init__(self, items: AsyncIterator[T | Ready]) -> None:
        self._items = items
        self._connected = False

    async def connect(self) -> AsyncStream[T]:
        """Open the stream's first connection now (its errors are raised here); returns itself."""
        if not self._connected:
            self._connected = True
            async for item in self._items:
                if isinstance(item, Ready):
                    break
        return self

    def __await__(self) -> Generator[Any, None, AsyncStream[T]]:
        return self.connect().__await__()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        await self.connect()
        while True:
            item = await self._items.__anext__()
            if not isinstance(item, Ready):
                return item

    async def aclose(self) -> None:
        """Stop the stream and close its connection."""
        close = getattr(self._items, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncStream[T]:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Opening(Generic[R]):
    """What an async call that opens something returns: await it (`x = await f()`), or use it as
    an async context manager (`async with f() as x:`) to have it closed at the end of the block."""

    def __init__(self, open_: Callable[[], Awaitable[R]], close: Callable[[R], Awaitable[Any]]) -> None:
        self._open = open_
        self._close = close
        self._value: R | None = None

    def __await__(self) -> Generator[Any, None, R]:
        return self._open().__await__()

    async def __aenter__(self) -> R:
        self._value = await self._open()
        return self._value

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._value is not None:
            await self._close(self._value)


async def open_socket(
    config: ClientConfig, path: str, params: dict[str, Any] | None = None
) -> ClientConnection:
    """A WebSocket to the API with the client's credential in the handshake."""
    return await connect(
        config.ws_url(path, params),
        additional_headers=config.ws_headers(),
        open_timeout=SOCKET_OPEN_TIMEOUT,
        close_timeout=SOCKET_CLOSE_TIMEOUT,
    )


async def _pause(failures: int, error: BaseException | None, what: str) -> None:
    """Wait before reconnection number `failures`, or give up when they are used up."""
    if failures > RECONNECT_POLICY.max_retries:
        if isinstance(error, SandboxPlatformError):
            raise error
        raise gave_up(what, error)
    await asyncio.sleep(RECONNECT_POLICY.delay(failures - 1))


async def _failed_to_open(exc: Exception, failures: int, what: str) -> int:
    """A socket that would not open: raised when no retry can mend it (refused, not found), else
    waited for; returns the failures counted so far, this one included."""
    fatal = handshake_error(exc)
    if fatal is not None:
        raise fatal from exc
    await _pause(failures + 1, exc, what)
    return failures + 1


async def process_output(
    transport: AsyncTransport, sandbox_id: str, process_id: str, since: int, encoding: str
) -> AsyncIterator[OutputChunk]:
    """`_sync_streams.process_output` for the async client."""
    path = routes.process_socket_path(sandbox_id, process_id)
    failures = 0
    while True:
        params = output_params(since, encoding)
        try:
            socket = await open_socket(transport.config, path, params)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            failures = await _failed_to_open(exc, failures, "process output")
            continue
        try:
            while True:
                try:
                    raw = await socket.recv()
                except ConnectionClosed as exc:
                    code, reason = closed_code(exc)
                    break
                frame = json_frame(raw)
                if frame is not None and frame.get("type") == "exit":
                    return
                chunk = output_chunk(frame, since)
                if chunk is not None:
                    since, failures = chunk.seq, 0
                    yield chunk
        finally:
            await socket.close()
        if not must_reconnect(code, reason):
            return
        failures += 1
        await _pause(failures, error_from_close(code, reason), "process output")


async def log_lines(
    transport: AsyncTransport, sandbox_id: str, since: int | None, tail: int
) -> AsyncIterator[LogLine | Ready]:
    """A sandbox's log lines (past ones per `since`/`tail`, then live), resumed with
    `since=<last seq>` whenever the socket drops; ends when the sandbox is destroyed."""
    cursor = LogCursor(since, tail)
    if cursor.needs_start:
        newest = await transport.request(routes.sandbox_logs(sandbox_id, 1, None))
        cursor.last = newest[-1].seq if newest else 0
    path = routes.logs_socket_path(sandbox_id)
    failures = 0
    while True:
        try:
            socket = await open_socket(transport.config, path, cursor.params())
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            failures = await _failed_to_open(exc, failures, "logs")
            continue
        if cursor.opened():
            yield READY
        async with socket:
            while True:
                try:
                    raw = await socket.recv()
                except ConnectionClosed as exc:
                    code, reason = closed_code(exc)
                    break
                frame = json_frame(raw)
                for line in cursor.accept(frame) if frame is not None else ():
                    failures = 0
                    yield line
        if not must_reconnect(code, reason):
            return
        failures += 1
        await _pause(failures, error_from_close(code, reason), "logs")


async def events(
    transport: AsyncTransport, sandbox_id: str | None, since: str | None
) -> AsyncIterator[Event | Ready]:
    """Server-sent events (one sandbox's, or all the caller's), resumed with `Last-Event-ID`
    after the last event seen whenever the stream drops."""
    path = routes.sandbox_events_path(sandbox_id)
    last = since
    failures = 0
    announced = False
    while True:
        error: BaseException | None = None
        try:
            async with transport.stream(path, {"Last-Event-ID": last} if last else {}) as response:
                if not announced:
                    announced = True
                    yield READY
                async for sse in EventSource(response).aiter_sse():
                    event = event_of(sse.data)
                    if event is None:
                        continue
                    last = sse.id or event.id
                    failures = 0
                    yield event
        except httpx.TransportError as exc:
            error = exc
        except SandboxPlatformError as exc:
            if exc.status not in EVENTS_RECONNECT_STATUSES:
                raise
            error = exc
        # Also when the server ended the stream (a subscriber too far behind): resume.
        failures += 1
        await _pause(failures, error, "events")


async def wait_for(
    transport: AsyncTransport,
    sandbox_id: str,
    timeout: float,
    done: Callable[[str], bool],
) -> dict[str, Any]:
    """Follow the caller's events until the sandbox's status satisfies `done` or `timeout` passes;
    the sandbox as it then is. Its status is read again after each of its events and at least
    every few seconds, so an event missed while the socket opened only delays the answer."""
    deadline = time.monotonic() + timeout
    socket: ClientConnection | None
    try:
        socket = await open_socket(transport.config, routes.EVENTS_SOCKET_PATH)
    except (OSError, asyncio.TimeoutError, InvalidHandshake):
        socket = None  # reading the status alone still works
    try:
        while True:
            sandbox = await transport.request(routes.get_sandbox(sandbox_id))
            if done(str(sandbox["status"])) or time.monotonic() >= deadline:
                return sandbox
            until = min(deadline, time.monotonic() + WAIT_RECHECK_SECONDS)
            socket = await _until_event_of(socket, sandbox_id, until)
    finally:
        if socket is not None:
            await socket.close()


async def _until_event_of(
    socket: ClientConnection | None, sandbox_id: str, until: float
) -> ClientConnection | None:
    """Wait until an event of the sandbox arrives or `until`; the socket if still usable."""
    while (remaining := until - time.monotonic()) > 0:
        if socket is None:
            await asyncio.sleep(min(remaining, 0.5))
            return None
        try:
            raw = await asyncio.wait_for(socket.recv(), remaining)
        except asyncio.TimeoutError:
            return socket
        except ConnectionClosed:
            return None
        frame = json_frame(raw)
        if frame is not None and frame.get("sandboxId") == sandbox_id:
            return socket
    return socket


class AsyncTerminal:
    """A shell in a running sandbox, on a real PTY: `send` keystrokes, `resize`, read the output
    (`recv`, `read_until`, or `async for`), `close`. `async with` closes it."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        #: The close code once the terminal has ended (1000 when the shell exited).
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    async def open(cls, config: ClientConfig, sandbox_id: str, cols: int, rows: int) -> AsyncTerminal:
        """Open a shell and wait until it is ready (`NotRunningError` when the sandbox is not running)."""
        try:
            socket = await open_socket(
                config, routes.terminal_socket_path(sandbox_id), {"cols": cols, "rows": rows}
            )
        except InvalidHandshake as exc:
            raise handshake_error(exc) or gave_up("terminal", exc) from exc
        try:
            while True:
                frame = json_frame(await asyncio.wait_for(socket.recv(), SOCKET_OPEN_TIMEOUT * 3))
                if frame is not None and frame.get("type") == "ready":
                    return cls(socket)
        except ConnectionClosed as exc:
            raise error_from_close(*closed_code(exc)) from None
        except BaseException:
            await socket.close()
            raise

    async def send(self, data: str | bytes) -> None:
        """Type into the terminal (text is sent as UTF-8; a newline is Enter)."""
        await self._socket.send(data.encode() if isinstance(data, str) else bytes(data))

    async def resize(self, cols: int, rows: int) -> None:
        """Change the PTY's size (what `stty size` shows inside)."""
        await self._socket.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def recv(self, timeout: float | None = None) -> bytes:
        """The next output of the terminal; b"" once the shell has exited. `TimeoutError` when
        nothing came within `timeout`; a contract error (e.g. `NotRunningError`) if the session
        ended for one."""
        if self.close_code is not None:
            return b""
        while True:
            try:
                raw = await asyncio.wait_for(self._socket.recv(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no terminal output within {timeout} s") from None
            except ConnectionClosed as exc:
                self.close_code, self.close_reason = closed_code(exc)
                if self.close_code in (1000, 1001, 1006):
                    return b""
                raise error_from_close(self.close_code, self.close_reason) from None
            if isinstance(raw, bytes):
                return raw
            # Text frames are the API's own ({"type": "pong"}); output is always binary.

    async def read_until(self, marker: str | bytes, timeout: float = 10.0) -> bytes:
        """Read output until `marker` has appeared; everything read. `TimeoutError` otherwise."""
        wanted = marker.encode() if isinstance(marker, str) else marker
        deadline = time.monotonic() + timeout
        seen = b""
        while wanted not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{wanted!r} did not appear within {timeout} s")
            chunk = await self.recv(timeout=remaining)
            if not chunk:
                raise EOFError(f"the terminal ended before {wanted!r} appeared")
            seen += chunk
        return seen

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.recv():
            yield chunk

    async def close(self) -> None:
        """End the session (the shell is hung up)."""
        await self._socket.close()

    async def __aenter__(self) -> AsyncTerminal:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
