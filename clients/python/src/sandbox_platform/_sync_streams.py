"""Live streams of the sync client: log lines and events that resume after a dropped connection,
waiting for a sandbox to settle, and the terminal (websockets' sync client, httpx for SSE)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse import EventSource
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

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
from sandbox_platform._transport import SyncTransport
from sandbox_platform.errors import SandboxPlatformError, error_from_close
from sandbox_platform.models import Event, LogLine, OutputChunk

T = TypeVar("T")


class Stream(Generic[T]):
    """An iterator over a live stream that can be closed (`close()`, or `with ... as stream`).

    It is connected when made: what happens after the call that returned it is in the stream."""

    def __init__(self, items: Iterator[T | Ready]) -> None:
        self._items = items
        for item in items:  # run up to the first connection (its errors are raised here)
            if isinstance(item, Ready):
                break

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while True:
            item = next(self._items)
            if not isinstance(item, Ready):
                return item

    def close(self) -> None:
        """Stop the stream and close its connection."""
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_socket(config: ClientConfig, path: str, params: dict[str, Any] | None = None) -> ClientConnection:
    """A WebSocket to the API with the client's credential in the handshake; the caller closes it."""
    connection = connect(
        config.ws_url(path, params),
        additional_headers=config.ws_headers(),
        open_timeout=SOCKET_OPEN_TIMEOUT,
        close_timeout=SOCKET_CLOSE_TIMEOUT,
    )
    # Entered here as `ExitStack.enter_context` would: its owner closes it (websockets 17 warns
    # about connections used without being entered).
    return connection.__enter__()


def _pause(failures: int, error: BaseException | None, what: str) -> None:
    """Wait before reconnection number `failures`, or give up when they are used up."""
    if failures > RECONNECT_POLICY.max_retries:
        if isinstance(error, SandboxPlatformError):
            raise error
        raise gave_up(what, error)
    time.sleep(RECONNECT_POLICY.delay(failures - 1))


def _failed_to_open(exc: Exception, failures: int, what: str) -> int:
    """A socket that would not open: raised when no retry can mend it (refused, not found), else
    waited for; returns the failures counted so far, this one included."""
    fatal = handshake_error(exc)
    if fatal is not None:
        raise fatal from exc
    _pause(failures + 1, exc, what)
    return failures + 1


def log_lines(
    transport: SyncTransport, sandbox_id: str, since: int | None, tail: int
) -> Iterator[LogLine | Ready]:
    """A sandbox's log lines (past ones per `since`/`tail`, then live), resumed with
    `since=<last seq>` whenever the socket drops; ends when the sandbox is destroyed."""
    cursor = LogCursor(since, tail)
    if cursor.needs_start:
        newest = transport.request(routes.sandbox_logs(sandbox_id, 1, None))
        cursor.last = newest[-1].seq if newest else 0
    path = routes.logs_socket_path(sandbox_id)
    failures = 0
    while True:
        try:
            socket = open_socket(transport.config, path, cursor.params())
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            failures = _failed_to_open(exc, failures, "logs")
            continue
        if cursor.opened():
            yield READY
        with socket:
            while True:
                try:
                    raw = socket.recv()
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
        _pause(failures, error_from_close(code, reason), "logs")


def process_output(
    transport: SyncTransport, sandbox_id: str, process_id: str, since: int, encoding: str
) -> Iterator[OutputChunk]:
    """A process's output chunks after seq `since` through its WebSocket (kept ones, then live),
    until it has ended; a dropped socket is opened again from the last seq received, so nothing
    is lost or repeated."""
    path = routes.process_socket_path(sandbox_id, process_id)
    failures = 0
    while True:
        params = output_params(since, encoding)
        try:
            socket = open_socket(transport.config, path, params)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            failures = _failed_to_open(exc, failures, "process output")
            continue
        with socket:
            while True:
                try:
                    raw = socket.recv()
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
        if not must_reconnect(code, reason):
            return
        failures += 1
        _pause(failures, error_from_close(code, reason), "process output")


def events(transport: SyncTransport, sandbox_id: str | None, since: str | None) -> Iterator[Event | Ready]:
    """Server-sent events (one sandbox's, or all the caller's), resumed with `Last-Event-ID`
    after the last event seen whenever the stream drops."""
    path = routes.sandbox_events_path(sandbox_id)
    last = since
    failures = 0
    announced = False
    while True:
        error: BaseException | None = None
        try:
            with transport.stream(path, {"Last-Event-ID": last} if last else {}) as response:
                if not announced:
                    announced = True
                    yield READY
                for sse in EventSource(response).iter_sse():
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
        _pause(failures, error, "events")


def wait_for(
    transport: SyncTransport,
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
        socket = open_socket(transport.config, routes.EVENTS_SOCKET_PATH)
    except (OSError, TimeoutError, InvalidHandshake):
        socket = None  # reading the status alone still works
    try:
        while True:
            sandbox = transport.request(routes.get_sandbox(sandbox_id))
            if done(str(sandbox["status"])) or time.monotonic() >= deadline:
                return sandbox
            until = min(deadline, time.monotonic() + WAIT_RECHECK_SECONDS)
            socket = _until_event_of(socket, sandbox_id, until)
    finally:
        if socket is not None:
            socket.close()


def _until_event_of(
    socket: ClientConnection | None, sandbox_id: str, until: float
) -> ClientConnection | None:
    """Block until an event of the sandbox arrives or `until`; the socket if still usable."""
    while (remaining := until - time.monotonic()) > 0:
        if socket is None:
            time.sleep(min(remaining, 0.5))
            return None
        try:
            raw = socket.recv(timeout=remaining)
        except TimeoutError:
            return socket
        except ConnectionClosed:
            return None
        frame = json_frame(raw)
        if frame is not None and frame.get("sandboxId") == sandbox_id:
            return socket
    return socket


class Terminal:
    """A shell in a running sandbox, on a real PTY: `send` keystrokes, `resize`, read the output
    (`recv`, `read_until`, or iterate), `close`. Use it as a context manager to close it."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        #: The close code once the terminal has ended (1000 when the shell exited).
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    def open(cls, config: ClientConfig, sandbox_id: str, cols: int, rows: int) -> Terminal:
        """Open a shell and wait until it is ready (`NotRunningError` when the sandbox is not running)."""
        try:
            socket = open_socket(
                config, routes.terminal_socket_path(sandbox_id), {"cols": cols, "rows": rows}
            )
        except InvalidHandshake as exc:
            raise handshake_error(exc) or gave_up("terminal", exc) from exc
        try:
            while True:
                frame = json_frame(socket.recv(timeout=SOCKET_OPEN_TIMEOUT * 3))
                if frame is not None and frame.get("type") == "ready":
                    return cls(socket)
        except ConnectionClosed as exc:
            raise error_from_close(*closed_code(exc)) from None
        except BaseException:
            socket.close()
            raise

    def send(self, data: str | bytes) -> None:
        """Type into the terminal (text is sent as UTF-8; a newline is Enter)."""
        self._socket.send(data.encode() if isinstance(data, str) else bytes(data))

    def resize(self, cols: int, rows: int) -> None:
        """Change the PTY's size (what `stty size` shows inside)."""
        self._socket.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    def recv(self, timeout: float | None = None) -> bytes:
        """The next output of the terminal; b"" once the shell has exited. `TimeoutError` when
        nothing came within `timeout`; a contract error (e.g. `NotRunningError`) if the session
        ended for one."""
        if self.close_code is not None:
            return b""
        while True:
            try:
                raw = self._socket.recv(timeout=timeout)
            except ConnectionClosed as exc:
                self.close_code, self.close_reason = closed_code(exc)
                if self.close_code in (1000, 1001, 1006):
                    return b""
                raise error_from_close(self.close_code, self.close_reason) from None
            if isinstance(raw, bytes):
                return raw
            # Text frames are the API's own ({"type": "pong"}); output is always binary.

    def read_until(self, marker: str | bytes, timeout: float = 10.0) -> bytes:
        """Read output until `marker` has appeared; everything read. `TimeoutError` otherwise."""
        wanted = marker.encode() if isinstance(marker, str) else marker
        deadline = time.monotonic() + timeout
        seen = b""
        while wanted not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{wanted!r} did not appear within {timeout} s")
            chunk = self.recv(timeout=remaining)
            if not chunk:
                raise EOFError(f"the terminal ended before {wanted!r} appeared")
            seen += chunk
        return seen

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.recv():
            yield chunk

    def close(self) -> None:
        """End the session (the shell is hung up)."""
        self._socket.close()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
