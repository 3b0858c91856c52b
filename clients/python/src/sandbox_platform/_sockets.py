"""What the sync and async streams share: frame decoding, the log cursor that makes a resumed
stream lose and repeat nothing, and what a close code or a failed connection means.
"""

from __future__ import annotations

import json
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from sandbox_platform._core import RetryPolicy
from sandbox_platform.errors import (
    APIConnectionError,
    SandboxPlatformError,
    error_from_body,
    error_from_close,
)
from sandbox_platform.models import Event, LogLine, OutputChunk

NORMAL_CLOSURE = 1000
ABNORMAL_CLOSURE = 1006  # the connection dropped without a close frame
# Closes after which the same stream is opened again: the server went away or restarts (1001,
# 1012), a dependency was briefly unavailable (1011), the client fell behind (1013), or the
# connection dropped (1006).
RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
#: Consecutive failed (re)connections before a stream gives up.
MAX_RECONNECTS = 8
#: Socket handshakes and close handshakes give up after this long.
SOCKET_OPEN_TIMEOUT = 10.0
SOCKET_CLOSE_TIMEOUT = 5.0
#: While waiting for a sandbox to settle, its status is read again at least this often (an
#: event could be missed while the events socket opens).
WAIT_RECHECK_SECONDS = 2.0
RECONNECT_POLICY = RetryPolicy(max_retries=MAX_RECONNECTS, backoff=0.25, max_backoff=5.0)
#: HTTP statuses after which an event stream is opened again (the API is briefly unavailable).
EVENTS_RECONNECT_STATUSES = frozenset({429, 502, 503, 504})


class Ready:
    """Yielded once by a stream's generator when its first connection is open: the stream object
    runs the generator up to it, so that subscribing happens when the stream is made."""


READY = Ready()


def json_frame(raw: str | bytes | bytearray) -> dict[str, Any] | None:
    """A text frame's JSON object (None for anything else)."""
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def closed_code(exc: ConnectionClosed) -> tuple[int, str]:
    """The close code and reason the server sent (1006 when the connection just dropped)."""
    if exc.rcvd is None:
        return ABNORMAL_CLOSURE, ""
    return exc.rcvd.code, exc.rcvd.reason


def must_reconnect(code: int, reason: str) -> bool:
    """After a close: True to open the stream again, False when it ended normally (1000).

    A close that stands for a contract error (4001, 4004, 4009, 1008, ...) raises it."""
    if code == NORMAL_CLOSURE:
        return False
    if code in RECONNECT_CODES:
        return True
    raise error_from_close(code, reason)


def handshake_error(exc: Exception) -> SandboxPlatformError | None:
    """A refused handshake as its typed error; None when the failure is worth a retry."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status >= 500 or status == 429:
            return None
        return error_from_body(status, json_frame(exc.response.body or b"") or {})
    return None


def gave_up(what: str, exc: BaseException | None) -> APIConnectionError:
    """The error of a stream that could not be (re)opened."""
    detail = f": {exc}" if exc is not None else ""
    return APIConnectionError(f"The {what} stream could not be reopened{detail}.")


class LogCursor:
    """Where a log stream is, so that a reconnection resumes with `since=<last seq>`.

    Lines at or before the last seq seen are dropped, so nothing is yielded twice. The socket is
    asked for batch frames (`batch=true`: several lines per WebSocket message, far cheaper at
    thousands of lines a second); one-line frames, which a server without batches sends, are
    read too."""

    def __init__(self, since: int | None, tail: int) -> None:
        self.last = since
        self.tail = tail
        self._opened = False

    @property
    def needs_start(self) -> bool:
        """True when the stream starts with no past lines and the current last seq must be read
        first, so that a reconnection before the first line knows where it was."""
        return self.last is None and self.tail == 0

    def params(self) -> dict[str, int | str]:
        """Query of the next connection: `tail` the first time, `since` after."""
        if self.last is not None:
            return {"since": self.last, "batch": "true"}
        if self._opened:
            # No line had arrived: the sandbox had none when the first connection read the past.
            return {"since": 0, "batch": "true"}
        return {"tail": self.tail, "batch": "true"}

    def opened(self) -> bool:
        """The socket is open (its past lines are on their way); True the first time."""
        first = not self._opened
        self._opened = True
        return first

    def accept(self, frame: dict[str, Any]) -> list[LogLine]:
        """The frame's new lines, oldest first ([] for status frames and repeats)."""
        kind = frame.get("type")
        if kind == "log":
            raw_lines: Any = [frame]
        elif kind == "logs":
            raw_lines = frame.get("lines")
            if not isinstance(raw_lines, list):
                return []
        else:
            return []
        lines: list[LogLine] = []
        for raw in raw_lines:
            line = LogLine.model_validate(raw)
            if self.last is not None and line.seq <= self.last:
                continue
            self.last = line.seq
            lines.append(line)
        return lines


def event_of(data: str) -> Event | None:
    """The event an SSE `data:` field carries (None for an empty one)."""
    return Event.model_validate_json(data) if data.strip() else None


def output_params(since: int, encoding: str) -> dict[str, Any]:
    """The process socket's query from a seq on (`encoding=base64` for the exact bytes)."""
    return {"since": since, **({"encoding": encoding} if encoding != "text" else {})}


def output_chunk(frame: dict[str, Any] | None, since: int) -> OutputChunk | None:
    """A process socket's output frame past `since` as an OutputChunk (None for anything else)."""
    if frame is None or frame.get("type") != "output":
        return None
    chunk = OutputChunk.model_validate({k: v for k, v in frame.items() if k != "type"})
    return chunk if chunk.seq > since else None
