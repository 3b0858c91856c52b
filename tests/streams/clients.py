"""Clients of the API's streams: a logs socket reader, an SSE parser, a WebSocket client that
stops reading, and a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.support.api import User
from tests.support.sockets import ws_connect, ws_url


@dataclass
class LogReader:
    """Reads log frames from a logs socket, keeping them in order: one-line frames as they are,
    the lines of batch frames (`batch=true`) each as the one-line frame it stands for."""

    socket: ClientConnection
    lines: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)  # lines per batch frame

    async def read_until(self, predicate: Any, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                frame = json.loads(await self.socket.recv())
                if frame["type"] == "log":
                    self.lines.append(frame)
                elif frame["type"] == "logs":
                    assert set(frame) == {"type", "lines"}, frame
                    assert frame["lines"], "a batch frame holds at least one line"
                    self.batch_sizes.append(len(frame["lines"]))
                    self.lines.extend({"type": "log", **line} for line in frame["lines"])
                elif frame["type"] == "status":
                    self.statuses.append(frame["status"])

    @property
    def texts(self) -> list[str]:
        return [line["text"] for line in self.lines]

    @property
    def seqs(self) -> list[int]:
        return [line["seq"] for line in self.lines]


@dataclass
class SseEvent:
    id: str | None
    data: dict[str, Any]


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent | str]:
    """Parse a text/event-stream: events, and comments (as strings)."""
    event_id: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield line[1:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield SseEvent(event_id, json.loads("\n".join(data)))
            event_id, data = None, []


class StalledClient:
    """A WebSocket client that stops reading: a raw socket with a small receive buffer (Linux
    would otherwise let it grow to tens of MB) and websockets' sans-I/O protocol, so that
    unread frames really back up into the server. `drain()` later reads everything it was sent."""

    def __init__(self, url: str) -> None:
        self.uri = parse_uri(url)
        self.protocol = ClientProtocol(self.uri, max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        self.frames: list[Frame] = []

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        await loop.sock_connect(self.sock, (self.uri.host, self.uri.port))
        self.protocol.send_request(self.protocol.connect())
        await loop.sock_sendall(self.sock, b"".join(self.protocol.data_to_send()))
        while (
            not isinstance(self.protocol.handshake_exc, Exception) and self.protocol.state is State.CONNECTING
        ):
            self.protocol.receive_data(await loop.sock_recv(self.sock, 4096))
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc
        self._collect()

    def _collect(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self.frames.append(event)

    async def drain(self, timeout: float = 30) -> int | None:
        """Read until the connection ends; the close code the server sent (None if it sent none)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(self.sock, 1 << 20)
                if not data:
                    self.protocol.receive_eof()
                    break
                self.protocol.receive_data(data)
                self._collect()
                if self.protocol.close_rcvd is not None:
                    break
        self.sock.close()
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else None

    def texts(self) -> list[str]:
        return [bytes(f.data).decode() for f in self.frames if f.opcode is Opcode.TEXT]


class Terminal:
    """A terminal socket: `ready` first, then keystrokes out and PTY output in."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.output = ""

    async def ready(self) -> None:
        async with asyncio.timeout(15):
            frame = await self.socket.recv()
        assert frame == '{"type":"ready"}', frame

    async def type(self, keys: str | bytes) -> None:
        await self.socket.send(keys)

    async def control(self, **command: object) -> None:
        await self.socket.send(json.dumps(command))

    async def expect(self, text: str, timeout: float = 15) -> str:
        """Read output until `text` appears after what was already matched; returns all output."""
        try:
            async with asyncio.timeout(timeout):
                while text not in self.output:
                    frame = await self.socket.recv()
                    if isinstance(frame, bytes):
                        self.output += frame.decode("utf-8", "replace")
                    else:
                        self.output += f"<text:{frame}>"
        except TimeoutError:
            raise AssertionError(f"{text!r} not in the terminal output: {self.output[-2000:]!r}") from None
        seen, _, self.output = self.output.partition(text)
        return seen + text

    async def closed(self, timeout: float = 15) -> int | None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await self.socket.recv()
        return self.socket.close_code


def terminal_url(ws_base: str, user: User, sandbox_id: str, **query: object) -> str:
    """`/ws/sandboxes/:id/terminal` of `user`, with `query` (cols, rows, mode)."""
    return ws_url(ws_base, f"/ws/sandboxes/{sandbox_id}/terminal", user.token, **query)


@contextlib.asynccontextmanager
async def open_terminal(url: str) -> AsyncIterator[Terminal]:
    """A terminal socket at `url`, once the server has said it is ready."""
    async with ws_connect(url) as socket:
        term = Terminal(socket)
        await term.ready()
        yield term
