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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sbx_common import filestream
from sbx_common.filestream import IDLE_TIMEOUT, WINDOW, Frame, PeerFinished, TransferAborted

MAGIC = b"SBXD1"
KEY_BYTES = 32
HELLO = len(MAGIC) + 16 + KEY_BYTES
# Frames the size of the NATS ones: a download's pieces are cut to it, and pass on as they are.
CHUNK = filestream.CHUNK
ACCEPT_TIMEOUT = 30.0
# The StreamReader's buffer: a whole frame and its header fit, so reading one is one copy.
READ_LIMIT = 2 * CHUNK
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


class SocketChannel:
    """One side of a transfer on a connected socket (the API's or the orchestrator's)."""

    chunk = CHUNK

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]],
        window: int = WINDOW,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._connect = connect
        self.window = window
        self.idle_timeout = idle_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Bounded: the reading task waits when it is full, and TCP then holds the sender back.
        self._frames: asyncio.Queue[Frame] = asyncio.Queue(maxsize=window)
        self._reading: asyncio.Task[None] | None = None
        self._aborted: str | None = None
        self._peer_finished = False
        self._stirred = asyncio.Event()  # the other side answered or left: a blocked send stops
        self._closed = asyncio.Event()

    @property
    def aborted(self) -> bool:
        return self._aborted is not None

    @property
    def unsent(self) -> int:
        """Bytes written here that the kernel has not taken yet (the other side is behind)."""
        return self._writer.transport.get_write_buffer_size() if self._writer is not None else 0

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self._reader, self._writer = await self._connect()
        except (OSError, TimeoutError) as exc:
            self._aborted = f"no data connection: {exc!r}"
            raise TransferAborted(self._aborted) from exc
        self._reading = asyncio.create_task(self._read_frames())

    async def _read_frames(self) -> None:
        assert self._reader is not None
        reason = "the other side closed the connection"
        try:
            while True:
                head = await self._reader.readexactly(_HEADER.size)
                code, length = _HEADER.unpack(head)
                kind = _KINDS.get(code)
                if kind is None or length > self.chunk:
                    reason = "the other side broke the protocol"
                    break
                data = await self._reader.readexactly(length) if length else b""
                if kind == "result":
                    self._peer_finished = True
                    self._stirred.set()
                await self._frames.put(Frame(kind, data))
                if kind != "data":
                    return  # the last frame of this side of the transfer
        except (asyncio.IncompleteReadError, OSError):
            pass
        self._abort(reason)

    def _abort(self, reason: str) -> None:
        if self._aborted is None:
            self._aborted = reason
        self._stirred.set()
        # Wakes a receiver; the queue may be full of data frames, which are dropped then.
        while self._frames.full():
            self._frames.get_nowait()
        self._frames.put_nowait(Frame("cancel", b""))

    async def _write(self, kind: str, data: bytes = b"") -> None:
        if self._writer is None:
            raise TransferAborted("the data connection is not open")
        if self._aborted is not None:
            raise TransferAborted(self._aborted)
        try:
            self._writer.write(_HEADER.pack(_CODES[kind], len(data)))
            if data:
                self._writer.write(data)
            if self._writer.transport.get_write_buffer_size():
                await self._drain()
        except OSError as exc:
            if self._peer_finished:
                raise PeerFinished from None
            self._abort(f"the data connection broke: {exc!r}")
            raise TransferAborted(self._aborted or "") from exc

    async def _drain(self) -> None:
        """Wait until the kernel takes more, or the other side answers: a receiver that failed
        early (a full disk) sends its result and reads no more, so waiting on the buffers alone
        would hang until the idle timeout."""
        assert self._writer is not None
        drained = asyncio.ensure_future(self._writer.drain())
        answered = asyncio.ensure_future(self._stirred.wait())
        try:
            await asyncio.wait(
                {drained, answered}, timeout=self.idle_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            answered.cancel()
        if drained.done():
            drained.result()  # raises what the drain raised (the connection broke)
            return
        drained.cancel()
        if self._peer_finished:
            raise PeerFinished
        if self._aborted is None:
            self._abort("the other side stopped reading")
        raise TransferAborted(self._aborted or "")

    async def send(self, data: bytes) -> None:
        for start in range(0, max(len(data), 1), self.chunk):
            if self._peer_finished:
                raise PeerFinished
            # The callers hand whole frames (or less): the slice is then the object itself.
            piece = data if len(data) <= self.chunk else data[start : start + self.chunk]
            await self._write("data", piece)

    async def end(self) -> None:
        await self._write("end")

    async def result(self, payload: bytes) -> None:
        await self._write("result", payload)

    async def receive(self) -> Frame:
        try:
            frame = await asyncio.wait_for(self._frames.get(), self.idle_timeout)
        except TimeoutError:
            self._abort("the other side went silent")
            raise TransferAborted("the other side went silent") from None
        if frame.kind == "cancel":
            raise TransferAborted(self._aborted or "cancelled")
        return frame

    async def cancel(self) -> None:
        """Close at once: the other side sees the connection end before any end or result."""
        self._abort("cancelled here")
        if self._writer is not None:
            self._writer.transport.abort()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(BaseException):
                await self._reading
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(address: str, transfer_id: str, key: bytes) -> Streams:
    """The API's side: connect to an orchestrator's data listener and say which transfer."""
    host, port = split_address(address)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=READ_LIMIT), ACCEPT_TIMEOUT
    )
    writer.write(MAGIC + uuid.UUID(hex=transfer_id).bytes + key)
    return reader, writer


@dataclass
class _Expected:
    key_sha256: bytes
    connection: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(
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
        self._server = await asyncio.start_server(self._on_connection, host, port, limit=READ_LIMIT)
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        self.address = self.advertise or (
            f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
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

        async def accepted() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            try:
                return await asyncio.wait_for(asyncio.shield(expected.connection), ACCEPT_TIMEOUT)
            finally:
                if self._expected.get(name) is expected:
                    del self._expected[name]

        return SocketChannel(connect=accepted)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(reader.readexactly(HELLO), ACCEPT_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        name = hello[len(MAGIC) : len(MAGIC) + 16]
        key = hello[len(MAGIC) + 16 :]
        expected = self._expected.get(name)
        if (
            hello[: len(MAGIC)] != MAGIC
            or expected is None
            or expected.connection.done()
            or not hmac.compare_digest(hashlib.sha256(key).digest(), expected.key_sha256)
        ):
            writer.transport.abort()  # an unknown transfer, a used one, or the wrong key
            return
        del self._expected[name]  # once: a second connection with the same key is refused
        expected.connection.set_result((reader, writer))
