"""Docker's archive API (`GET`/`PUT /containers/:id/archive`) spoken directly on the engine's
socket from the event loop, for the bulk bytes of uploads and downloads.

Through the docker SDK every byte crossed urllib3 in a worker thread (about 32 KiB chunks of
chunked encoding to parse on the way out, chunk headers to add on the way in) and one hand-over
between the thread and the event loop per piece: most of the orchestrator's CPU in a transfer
(PERFORMANCE.md, "Files"). Here:

- a download asks in HTTP/1.0, so Docker sends the tar as plain bytes until it closes the
  connection (no chunked encoding to undo), read as asked straight into each piece's buffer;
- an upload states its `Content-Length` (the tar's size is known from the file's) and writes
  each piece as it comes, the kernel's socket buffer holding a slow Docker back.

Only for an engine on a Unix socket or on plain TCP; one behind TLS or SSH keeps the SDK's path
(`endpoint_of` returns None then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from sbx_orchestrator.engine.files_common import FileOpError

DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Endpoint:
    """Where the engine's API is: a Unix socket path, or a TCP host and port."""

    unix_path: str | None = None
    host: str | None = None
    port: int = 0


def endpoint_of(base_url: str | None, tls: bool) -> Endpoint | None:
    """The endpoint of a Docker host URL (`SBX_DOCKER_HOST`, DOCKER_HOST, or the local socket)."""
    if tls:
        return None
    url = base_url or f"unix://{DEFAULT_SOCKET}"
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("unix", "http+unix"):
        return Endpoint(unix_path=parsed.path or DEFAULT_SOCKET)
    if parsed.scheme in ("tcp", "http") and parsed.hostname:
        return Endpoint(host=parsed.hostname, port=parsed.port or 2375)
    return None


def _error(status: int, body: bytes) -> FileOpError:
    try:
        message = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    text = message.lower()
    if "no space left" in text or "quota" in text:
        return FileOpError("STORAGE_FULL", "The sandbox's disk or volume is full.")
    if status == 404:
        return FileOpError("NOT_FOUND", "No such file or directory.")
    return FileOpError("UNAVAILABLE", "The sandbox's files could not be reached.")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise FileOpError("UNAVAILABLE", "The Docker engine's answer was unreadable.") from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def _target(version: str, container_id: str, path: str) -> str:
    query = urllib.parse.urlencode({"path": path})
    return f"/v{version}/containers/{urllib.parse.quote(container_id)}/archive?{query}"


class ExactReader(asyncio.BufferedProtocol):
    """A response read only as asked, each exact read straight into a buffer of its own (no
    copy after the kernel's): the download's pieces are handed on as they were read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._scratch = bytearray(65536)
        self._pending = bytearray()  # read before anyone asked for it (the head's tail)
        self._target: bytearray | None = None
        self._view = memoryview(b"")
        self._filled = 0
        self._into_target = False
        self._waiter: asyncio.Future[None] | None = None
        self._ended: str | None = None
        self.writable = asyncio.Event()  # the kernel takes more of what is written
        self.writable.set()
        self.answered = asyncio.Event()  # the engine said something (or left)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Into the asked-for buffer while it has room; anything else (the head, or bytes the
        # transport reads before its pause takes effect) into the scratch, kept for later.
        self._into_target = self._target is not None and self._filled < len(self._target)
        if self._into_target:
            return self._view[self._filled :]
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        if not self._into_target:
            self._pending += self._scratch[:nbytes]
            self._wake()
            return
        assert self._target is not None
        self._filled += nbytes
        if self._filled == len(self._target):
            self._wake()
            if self.transport is not None and self.transport.is_reading():
                self.transport.pause_reading()  # nothing more until asked

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def _wake(self) -> None:
        self.answered.set()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        self._ended = "the engine's answer ended early"
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = self._ended or "the connection to the engine broke"
        self.writable.set()
        self._wake()

    async def _wait(self) -> None:
        """Until more is read (reading only meanwhile, when reading is held)."""
        assert self.transport is not None
        held = not self.transport.is_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        if held:
            self.transport.resume_reading()
        try:
            await self._waiter
        finally:
            if held and not self.transport.is_closing() and self.transport.is_reading():
                self.transport.pause_reading()

    async def head(self) -> bytes:
        """Everything up to and including the blank line after the headers."""
        while (end := self._pending.find(b"\r\n\r\n")) < 0:
            if self._ended is not None or len(self._pending) > 65536:
                raise FileOpError("UNAVAILABLE", "The Docker engine's answer was unreadable.")
            await self._wait()
        head = bytes(self._pending[: end + 4])
        del self._pending[: end + 4]
        return head

    async def read_exactly(self, size: int) -> bytearray:
        """Exactly `size` bytes, in the buffer they were read into."""
        target = bytearray(size)
        taken = min(size, len(self._pending))
        target[:taken] = self._pending[:taken]
        del self._pending[:taken]
        if taken == size:
            return target
        self._target, self._view, self._filled = target, memoryview(target), taken
        try:
            while self._filled < size:
                if self._ended is not None:
                    raise FileOpError("UNAVAILABLE", "The file's archive ended early.")
                await self._wait()
        finally:
            self._view.release()
            self._target = None
        return target

    async def rest(self, limit: int = 65536) -> bytes:
        """What else the answer holds, up to `limit` bytes (an error's message)."""
        while self._ended is None and len(self._pending) < limit:
            await self._wait()
        return bytes(self._pending[:limit])


async def _open(endpoint: Endpoint) -> tuple[asyncio.Transport, ExactReader]:
    loop = asyncio.get_running_loop()
    if endpoint.unix_path is not None:
        return await loop.create_unix_connection(ExactReader, endpoint.unix_path)
    return await loop.create_connection(ExactReader, endpoint.host or "", endpoint.port)


@contextlib.asynccontextmanager
async def get_archive(
    endpoint: Endpoint, version: str, container_id: str, path: str
) -> AsyncIterator[ExactReader]:
    """The tar stream of `path`, to be read with `read_exactly`."""
    transport, reader = await _open(endpoint)
    transport.pause_reading()
    try:
        transport.write(
            f"GET {_target(version, container_id, path)} HTTP/1.0\r\nHost: docker\r\n\r\n".encode()
        )
        head = await reader.head()
        status, _ = _parse_head(head)
        if status != 200:
            raise _error(status, await reader.rest())
        yield reader
    finally:
        transport.abort()


async def put_archive(
    endpoint: Endpoint,
    version: str,
    container_id: str,
    directory: str,
    *,
    length: int,
    body: AsyncIterator[bytes],
) -> None:
    """Send exactly `length` bytes of tar from `body` to be extracted into `directory`."""
    transport, engine = await _open(endpoint)
    try:
        transport.write(
            (
                f"PUT {_target(version, container_id, directory)} HTTP/1.1\r\nHost: docker\r\n"
                f"Content-Type: application/x-tar\r\nContent-Length: {length}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        sent = 0
        async for data in body:
            if engine.answered.is_set():
                break  # the engine answered before taking it all (no such directory, a full disk)
            sent += len(data)
            if sent > length:
                raise FileOpError("VALIDATION_ERROR", "The body was longer than its Content-Length.")
            transport.write(data)
            if not engine.writable.is_set():
                await _first(engine.writable.wait(), engine.answered.wait())
        if sent < length and not engine.answered.is_set():
            # The engine would wait for the rest: the connection is cut instead, and its
            # extraction fails on the truncated tar (the caller removes the temporary file).
            raise FileOpError("VALIDATION_ERROR", "The body was shorter than its Content-Length.")
        status, _ = _parse_head(await engine.head())
        if status // 100 != 2:
            raise _error(status, await engine.rest())
    finally:
        transport.abort()


async def _first(*waits: Coroutine[Any, Any, object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
