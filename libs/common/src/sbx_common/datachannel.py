"""File bytes between the API and the orchestrator on a TCP connection of their own.

The NATS transfer (`sbx_common.filestream`) sends every byte through nats-server and through
both services' NATS clients (a publish, a parse and a callback per frame, plus credit
messages): on two cores that was about a third of a transfer's CPU. Here the control stays on
NATS (`sbx.rpc.files`: who may do what is decided there, as before) and only the bytes take a
direct connection, which the kernel's TCP flow control bounds instead of credit frames:

1. the API makes a 32-byte random key and sends its SHA-256 in the FilesRequest
   (`data_key_sha256`); the key itself never travels on NATS;
2. the orchestrator expects one connection for that transfer and answers with the address of
   its data listener (`data_address`);
3. the API connects and sends a hello (`MAGIC`, the transfer id, the key); the orchestrator
   accepts it only for a transfer it expects, with the key whose hash it was given, once, and
   within `ACCEPT_TIMEOUT`;
4. both sides then exchange frames: one kind byte, a 4-byte big-endian length, the payload.

Kinds are those of the NATS transfer: `D`ata, `E`nd, `R`esult (a FilesReply as JSON); a cancel
is the connection closed, which the other side sees at once. `SocketChannel` has the interface
of `filestream.Channel`, so the transfers' pumps on both sides do not care which one they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import struct
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from sbx_common import filestream
from sbx_common.filestream import IDLE_TIMEOUT, WINDOW, Frame, PeerFinished, TransferAborted

MAGIC = b"SBXD1"
KEY_BYTES = 32
HELLO = len(MAGIC) + 16 + KEY_BYTES
# Frames the size of the NATS ones: a download's pieces are cut to it, and pass on as they are.
CHUNK = filestream.CHUNK
ACCEPT_TIMEOUT = 30.0
# How much a side may have queued before a send waits (asyncio's default is 64 KiB, under one
# frame): with a few frames queued the sender goes on while the kernel moves the bytes, instead
# of stopping after every frame. Runs alternated, 1 GiB: downloads 0.82-0.90x of `docker cp`
# with it, 0.74-0.82x without; uploads 0.55-0.66x either way (PERFORMANCE.md, "Files").
WRITE_BUFFER = 4 * CHUNK
_HEADER = struct.Struct(">cI")
_KINDS = {b"D": "data", b"E": "end", b"R": "result"}
_CODES = {name: code for code, name in _KINDS.items()}


def new_key() -> tuple[bytes, str]:
    """A transfer's key and the hex SHA-256 that goes in its request."""
    key = os.urandom(KEY_BYTES)
    return key, hashlib.sha256(key).hexdigest()


def split_address(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not host:port: {address!r}")
    return host.strip("[]"), int(port)


class FrameProtocol(asyncio.BufferedProtocol):
    """Frames read straight into buffers of their own size (no copy after the kernel's), queued
    for the channel; reading pauses while `window` frames wait, so TCP holds the sender back.

    On the listener's side it first reads the hello and asks `on_hello` whether to go on."""

    def __init__(self, window: int, on_hello: Callable[[FrameProtocol, bytes], bool] | None = None) -> None:
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.lost = asyncio.Event()  # the connection ended (either side)
        self.finished = asyncio.Event()  # the peer's last frame (end or result) came, or it left
        self.said_hello = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.last_kind = ""
        self._on_hello = on_hello
        self._paused = False
        self._kind = ""
        self._buffer = bytearray(HELLO if on_hello is not None else _HEADER.size)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._phase = "hello" if on_hello is not None else "header"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._filled == len(self._buffer):
            self._complete()

    def _expect(self, size: int, phase: str) -> None:
        self._view.release()
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._phase = phase

    def _complete(self) -> None:
        assert self.transport is not None
        if self._phase == "hello":
            assert self._on_hello is not None
            if not self._on_hello(self, bytes(self._buffer)):
                self.transport.abort()
                return
            self._expect(_HEADER.size, "header")
        elif self._phase == "header":
            code, length = _HEADER.unpack(self._buffer)
            kind = _KINDS.get(code)
            if kind is None or length > CHUNK:
                self.transport.abort()  # the other side broke the protocol
                return
            self._kind = kind
            if length:
                self._expect(length, "payload")
            else:
                self._expect(_HEADER.size, "header")
                self._emit(b"")
        else:
            payload = self._buffer
            self._expect(_HEADER.size, "header")
            self._emit(payload)  # the buffer itself, handed over: a new one takes the next frame

    def _emit(self, data: bytes | bytearray) -> None:
        self.last_kind = self._kind
        # A bytearray where the consumers take bytes: it goes wherever they send bytes, uncopied.
        self.frames.put_nowait(Frame(self._kind, data))  # type: ignore[arg-type]
        if self._kind != "data":
            self.finished.set()
        if self.frames.qsize() >= self.window and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def taken(self) -> None:
        """A frame left the queue: read on once there is room."""
        if self._paused and self.frames.qsize() < self.window and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def eof_received(self) -> bool:
        return False  # closes the transport: a transfer never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self.finished.set()
        self.writable.set()


Link = tuple[asyncio.Transport, FrameProtocol]


class SocketChannel:
    """One side of a transfer on a connected socket (the API's or the orchestrator's)."""

    chunk = CHUNK

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[Link]],
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._connect = connect
        self.idle_timeout = idle_timeout
        self._transport: asyncio.Transport | None = None
        self._protocol: FrameProtocol | None = None
        self._aborted: str | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def aborted(self) -> bool:
        return self._aborted is not None

    @property
    def _peer_finished(self) -> bool:
        return self._protocol is not None and self._protocol.last_kind == "result"

    @property
    def unsent(self) -> int:
        """Bytes written here that the kernel has not taken yet (the other side is behind)."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    async def open(self) -> None:
        if self._transport is not None:
            return
        try:
            self._transport, self._protocol = await self._connect()
        except (OSError, TimeoutError) as exc:
            self._aborted = f"no data connection: {exc!r}"
            raise TransferAborted(self._aborted) from exc
        self._watch = asyncio.create_task(self._watch_connection(self._protocol))

    async def _watch_connection(self, protocol: FrameProtocol) -> None:
        await protocol.lost.wait()
        if protocol.last_kind not in ("end", "result"):
            self._abort("the other side closed the connection")

    def _abort(self, reason: str) -> None:
        if self._aborted is None:
            self._aborted = reason
        if self._protocol is not None:
            self._protocol.frames.put_nowait(Frame("cancel", b""))  # wakes a receiver
            self._protocol.writable.set()  # and a sender

    async def _write(self, kind: str, parts: Sequence[bytes | bytearray]) -> None:
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None:
            raise TransferAborted("the data connection is not open")
        if self._aborted is not None:
            raise TransferAborted(self._aborted)
        if transport.is_closing():
            raise PeerFinished if self._peer_finished else TransferAborted("the data connection closed")
        # The header and the pieces in one gathered write: no copy into a frame first.
        transport.writelines([_HEADER.pack(_CODES[kind], sum(map(len, parts))), *parts])
        if protocol.writable.is_set():
            return
        # The kernel takes no more: wait until it does, or until the other side answers (a
        # receiver that failed early, a full disk, sends its result and reads no more).
        answered = asyncio.ensure_future(protocol.finished.wait())
        writable = asyncio.ensure_future(protocol.writable.wait())
        try:
            await asyncio.wait(
                {writable, answered}, timeout=self.idle_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            answered.cancel()
            writable.cancel()
        if self._peer_finished:
            raise PeerFinished
        if self._aborted is not None:
            raise TransferAborted(self._aborted)
        if not protocol.writable.is_set():
            self._abort("the other side stopped reading")
            raise TransferAborted("the other side stopped reading")

    async def send(self, data: bytes | bytearray) -> None:
        for start in range(0, max(len(data), 1), self.chunk):
            if self._peer_finished:
                raise PeerFinished
            # The callers hand whole frames (or less): the slice is then the object itself.
            piece = data if len(data) <= self.chunk else data[start : start + self.chunk]
            await self._write("data", [piece] if piece else [])

    async def send_parts(self, parts: Sequence[bytes | bytearray]) -> None:
        """Send pieces that together fit one frame, as one frame, without joining them."""
        if sum(map(len, parts)) > self.chunk:
            await self.send(b"".join(parts))
            return
        if self._peer_finished:
            raise PeerFinished
        await self._write("data", parts)

    async def end(self) -> None:
        await self._write("end", [])

    async def result(self, payload: bytes) -> None:
        await self._write("result", [payload])

    async def receive(self) -> Frame:
        protocol = self._protocol
        if protocol is None:
            raise TransferAborted("the data connection is not open")
        try:
            frame = await asyncio.wait_for(protocol.frames.get(), self.idle_timeout)
        except TimeoutError:
            self._abort("the other side went silent")
            raise TransferAborted("the other side went silent") from None
        protocol.taken()
        if frame.kind == "cancel":
            raise TransferAborted(self._aborted or "cancelled")
        return frame

    async def cancel(self) -> None:
        """Close at once: the other side sees the connection end before any end or result."""
        self._abort("cancelled here")
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._transport is not None and self._protocol is not None:
            self._transport.close()  # what was written still goes out first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._protocol.lost.wait(), self.idle_timeout)
            if not self._protocol.lost.is_set():
                self._transport.abort()


async def connect(address: str, transfer_id: str, key: bytes) -> Link:
    """The API's side: connect to an orchestrator's data listener and say which transfer."""
    host, port = split_address(address)
    loop = asyncio.get_running_loop()
    transport, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: FrameProtocol(WINDOW), host, port), ACCEPT_TIMEOUT
    )
    transport.write(MAGIC + uuid.UUID(hex=transfer_id).bytes + key)
    return transport, protocol


@dataclass
class _Expected:
    key_sha256: bytes
    connection: asyncio.Future[Link] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DataListener:
    """The orchestrator's side: one TCP listener; each connection belongs to the one transfer
    whose key it shows, and to nothing else."""

    def __init__(self, listen: str, advertise: str = "") -> None:
        self.listen = listen
        self.advertise = advertise
        self.address = ""
        self._server: asyncio.Server | None = None
        self._expected: dict[bytes, _Expected] = {}

    async def start(self) -> None:
        host, port = split_address(self.listen)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        self.address = self.advertise or (
            f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for expected in self._expected.values():
            if not expected.connection.done():
                expected.connection.cancel()
        self._expected.clear()

    def expect(self, transfer_id: str, key_sha256_hex: str) -> SocketChannel:
        """The channel of a transfer whose connection is yet to come: its `open()` waits for it
        (at most ACCEPT_TIMEOUT), and the expectation ends with the channel either way."""
        name = uuid.UUID(hex=transfer_id).bytes
        try:
            digest = bytes.fromhex(key_sha256_hex)
        except ValueError:
            digest = b""
        if len(digest) != hashlib.sha256().digest_size:
            raise ValueError("bad key hash")
        expected = _Expected(digest)
        self._expected[name] = expected

        async def accepted() -> Link:
            try:
                return await asyncio.wait_for(asyncio.shield(expected.connection), ACCEPT_TIMEOUT)
            finally:
                if self._expected.get(name) is expected:
                    del self._expected[name]

        return SocketChannel(connect=accepted)

    def _protocol(self) -> FrameProtocol:
        protocol = FrameProtocol(WINDOW, on_hello=self._on_hello)
        loop = asyncio.get_running_loop()
        # A connection that never says hello is closed once ACCEPT_TIMEOUT has passed.
        loop.call_later(ACCEPT_TIMEOUT, _close_if_silent, protocol)
        return protocol

    def _on_hello(self, protocol: FrameProtocol, hello: bytes) -> bool:
        name = hello[len(MAGIC) : len(MAGIC) + 16]
        key = hello[len(MAGIC) + 16 :]
        expected = self._expected.get(name)
        if (
            hello[: len(MAGIC)] != MAGIC
            or expected is None
            or expected.connection.done()
            or not hmac.compare_digest(hashlib.sha256(key).digest(), expected.key_sha256)
        ):
            return False  # an unknown transfer, a used one, or the wrong key
        del self._expected[name]  # once: a second connection with the same key is refused
        assert protocol.transport is not None
        protocol.said_hello = True
        expected.connection.set_result((protocol.transport, protocol))
        return True


def _close_if_silent(protocol: FrameProtocol) -> None:
    if not protocol.said_hello and protocol.transport is not None:
        protocol.transport.abort()
