"""Pure decoders for Docker's log stream: HTTP chunked encoding, multiplexed frames, lines.

Docker answers `GET /containers/<id>/logs?timestamps=1` with one frame per log message:
an 8-byte header (stream 1 = stdout, 2 = stderr; payload length) and
`<RFC 3339 nano timestamp> <text>`, the text ending with a newline unless Docker split a long
line (its own limit is 16 KiB; the pieces share the first piece's timestamp). A TTY container's
stream has no frame headers and everything is stdout.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

_HEADER = struct.Struct(">BxxxL")
STDOUT, STDERR = 1, 2
StreamName = Literal["stdout", "stderr"]
STREAM_NAMES: dict[int, StreamName] = {STDOUT: "stdout", STDERR: "stderr"}


class ChunkedDecoder:
    """Incremental decoder of HTTP/1.1 chunked transfer encoding."""

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # bytes of the current chunk still to come
        self._after_chunk = False  # the CRLF after a chunk's data is pending
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        pos, end = 0, len(buffer)
        while pos < end and not self.done:
            if self._remaining:
                take = min(self._remaining, end - pos)
                out.append(buffer[pos : pos + take])
                pos += take
                self._remaining -= take
                self._after_chunk = self._remaining == 0
                continue
            if self._after_chunk:
                if end - pos < 2:
                    break
                pos += 2
                self._after_chunk = False
                continue
            eol = buffer.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buffer[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                self.done = True
            self._remaining = size
        self._buffer = buffer[pos:]
        return b"".join(out)


class FrameDecoder:
    """Incremental decoder of Docker's multiplexed stream into (stream, payload) frames."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        frames: list[tuple[int, bytes]] = []
        pos, end = 0, len(buffer)
        unpack = _HEADER.unpack_from
        while end - pos >= 8:
            stream, size = unpack(buffer, pos)
            if end - pos - 8 < size:
                break
            frames.append((stream, buffer[pos + 8 : pos + 8 + size]))
            pos += 8 + size
        self._buffer = buffer[pos:]
        return frames


class TtyDecoder:
    """A TTY container's stream: `<timestamp> <text>\\n` entries, all stdout."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        return [(STDOUT, line + b"\n") for line in lines]


@dataclass(slots=True)
class RawLine:
    """One line as Docker gave it (before numbering). Not frozen: a frozen dataclass's
    `__init__` goes through `object.__setattr__`, twice as slow, and one is made per line."""

    stream: StreamName
    text: str
    ts: datetime  # microsecond precision (PostgreSQL's)
    ts_raw: str  # Docker's own text, nanosecond precision
    # A piece of a longer line (Docker's 16 KiB pieces, or ours past `max_line_bytes`): its
    # pieces share one timestamp and may be identical, so only a whole line identifies itself.
    partial: bool = False


def parse_timestamp(raw: str) -> datetime:
    """Docker's RFC 3339 timestamp (up to nanoseconds) to a UTC datetime, truncated to microseconds.

    `datetime.fromisoformat` (Python 3.11+) reads it in one C call, truncating the nanoseconds;
    the slower path stays for anything it refuses.
    """
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        body = raw.rstrip("Z")
        seconds, _, fraction = body.partition(".")
        micros = int((fraction + "000000")[:6]) if fraction else 0
        base = datetime.fromisoformat(seconds[:19]).replace(tzinfo=UTC)
        return base.replace(microsecond=micros)


def split_text(data: bytes, max_bytes: int) -> list[bytes]:
    """Split `data` into pieces of at most `max_bytes`, never inside a UTF-8 character."""
    if len(data) <= max_bytes:
        return [data]
    pieces: list[bytes] = []
    start = 0
    while len(data) - start > max_bytes:
        cut = start + max_bytes
        # A piece must not start with a UTF-8 continuation byte (10xxxxxx): step back over
        # at most 3 of them (more means the bytes are not UTF-8 anyway).
        adjusted = cut
        while adjusted > cut - 3 and (data[adjusted] & 0xC0) == 0x80:
            adjusted -= 1
        if (data[adjusted] & 0xC0) != 0x80 and adjusted > start:
            cut = adjusted
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


def decode_text(data: bytes) -> str:
    """Bytes to storable text: invalid UTF-8 replaced, NULs (refused by PostgreSQL) removed."""
    text = data.decode("utf-8", "replace")
    return text.replace("\x00", "") if "\x00" in text else text


class LineParser:
    """Turns (stream, payload) frames into RawLines: timestamp split off, long text split."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._last_ts_raw = ""
        self._last_ts = datetime.fromtimestamp(0, UTC)

    def parse(self, frames: list[tuple[int, bytes]]) -> list[RawLine]:
        # The hot loop of the shipper (one pass per line): locals, and the common case (a whole
        # line of valid text shorter than the limit) without the general helpers' calls.
        lines: list[RawLine] = []
        append = lines.append
        max_bytes = self.max_line_bytes
        names = STREAM_NAMES
        for stream_id, payload in frames:
            stream = names.get(stream_id)
            if stream is None:  # stdin echo or a daemon error frame: not the container's output
                continue
            space = payload.find(b" ")
            if space < 0:
                continue
            ts_raw = payload[:space].decode("ascii", "replace")
            if ts_raw != self._last_ts_raw:
                self._last_ts = parse_timestamp(ts_raw)
                self._last_ts_raw = ts_raw
            end = len(payload)
            whole = payload.endswith(b"\n")
            if whole:
                end -= 2 if payload.endswith(b"\r\n") else 1
            text = payload[space + 1 : end]
            if len(text) <= max_bytes:
                decoded = text.decode("utf-8", "replace")
                if "\x00" in decoded:
                    decoded = decoded.replace("\x00", "")
                append(RawLine(stream, decoded, self._last_ts, ts_raw, not whole))
                continue
            pieces = split_text(text, max_bytes)
            last = len(pieces) - 1
            for i, piece in enumerate(pieces):
                append(RawLine(stream, decode_text(piece), self._last_ts, ts_raw, not whole or i < last))
        return lines


def docker_since(ts: datetime) -> str:
    """A datetime as Docker's `since` parameter (`<unix seconds>.<nanoseconds>`)."""
    delta = ts - datetime.fromtimestamp(0, UTC)
    seconds = delta.days * 86400 + delta.seconds
    return f"{seconds}.{delta.microseconds * 1000:09d}"


# A line as the filter remembers it: the hash of (Docker's timestamp, stream, text). One int
# per line, not a tuple and never the text itself; two different lines of one container that
# share a 64-bit hash and arrive within the memory of each other are not a practical concern.
LineKey = int


class ReplayFilter:
    """Drops lines Docker sends a second time.

    When a container's log file rotates while it is followed, Docker (20.10 at least) sends a
    run of lines it had already sent, in order, then carries on. Such a run starts with a line
    earlier than the newest one seen, or is just the newest whole line again; if that line is one
    of the recent lines, the lines that follow it are matched against the lines that followed it
    the first time and dropped while they match. A line that is merely out of order (stdout and
    stderr are stamped by two goroutines) is not a line seen before, so it is kept.
    """

    def __init__(self, memory: int = 200_000) -> None:
        self._memory = memory
        self._history: deque[LineKey] = deque()
        self._first_position: dict[LineKey, int] = {}
        self._base = 0  # position of history[0] among all lines kept
        self._newest = datetime.fromtimestamp(0, UTC)
        self._expect: int | None = None  # during a replay: position of the line expected next
        self._newest_whole: LineKey | None = None  # the last line kept, if a whole line

    @staticmethod
    def key(line: RawLine) -> LineKey:
        return hash((line.ts_raw, line.stream, line.text))

    def keep(self, line: RawLine) -> bool:
        key = self.key(line)
        end = self._base + len(self._history)
        if self._expect is not None:
            if self._history[self._expect - self._base] == key:
                self._expect += 1
                if self._expect == end:
                    self._expect = None  # caught up: what comes next is new
                return False
            self._expect = None  # the run diverged: this line is new
        elif line.ts < self._newest:
            position = self._first_position.get(key)
            if position is not None:
                self._expect = position + 1 if position + 1 < end else None
                return False
        elif key == self._newest_whole:
            # A run of one: the newest line again, stamped as the first time. Only a whole line
            # counts: the pieces of a long line share one timestamp and can be identical.
            return False
        # Remember the line (inline: this runs for every line kept).
        history = self._history
        if len(history) >= self._memory:
            old = history.popleft()
            if self._first_position.get(old) == self._base:
                del self._first_position[old]
            self._base += 1
        self._first_position.setdefault(key, self._base + len(history))
        history.append(key)
        self._newest = max(self._newest, line.ts)
        self._newest_whole = None if line.partial else key
        return True

    def new_lines(self, lines: list[RawLine]) -> list[RawLine]:
        """The lines of `lines` to keep, in order."""
        keep = self.keep
        return [line for line in lines if keep(line)]
