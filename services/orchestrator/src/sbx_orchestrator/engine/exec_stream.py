"""One exec in a container with its streams on the event loop: stdin written as it comes,
stdout/stderr read frame by frame (Docker's multiplexed stream), the exit code at the end.

Only the Docker API calls (create, start, inspect) run in the engine's worker threads; the bytes
go through the hijacked socket without a thread, like a terminal session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sbx_orchestrator.engine import in_container
from sbx_orchestrator.engine.docker_engine import DockerEngine

STDOUT, STDERR = 1, 2
READ_SIZE = 256 * 1024
EXIT_CODE_WAIT = 5.0


class ExecStream:
    def __init__(self, engine: DockerEngine, container_id: str) -> None:
        self.engine = engine
        self.container_id = container_id
        self.exec_id = ""
        self._socket_io: Any = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    async def start(self, argv: Sequence[str], *, stdin: bool = False) -> None:
        engine = self.engine
        created = await engine.call(
            "exec_create",
            engine.api.exec_create,
            self.container_id,
            list(argv),
            stdin=stdin,
            stdout=True,
            stderr=True,
        )
        self.exec_id = str(created["Id"])
        self._socket_io = await engine.call("exec_start", engine.api.exec_start, self.exec_id, socket=True)
        raw = getattr(self._socket_io, "_sock", self._socket_io)
        if not isinstance(raw, socket.socket):
            raise TypeError("the exec stream is not a socket")
        raw.setblocking(False)
        self._sock = raw

    async def write(self, data: bytes) -> None:
        assert self._sock is not None
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    def close_stdin(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    async def _read_exactly(self, size: int) -> bytes | None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while len(self._buffer) < size:
            try:
                data = await loop.sock_recv(self._sock, READ_SIZE)
            except OSError:
                return None
            if not data:
                return None
            self._buffer += data
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, bytes) until the exec's output ends."""
        while True:
            header = await self._read_exactly(8)
            if header is None:
                return
            stream, size = header[0], struct.unpack(">I", header[4:])[0]
            payload = await self._read_exactly(size) if size else b""
            if payload is None:
                return
            yield stream, payload

    async def exit_code(self) -> int | None:
        engine = self.engine
        return await engine.call(
            "exec_inspect", in_container.wait_exit_code, engine.api, self.exec_id, EXIT_CODE_WAIT
        )

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._socket_io is not None:
            with contextlib.suppress(OSError):
                self._socket_io.close()
        self._sock = self._socket_io = None


async def run_script(
    engine: DockerEngine, container_id: str, script: str, args: Sequence[str], limit: int = 4 * 1024 * 1024
) -> tuple[int | None, bytes, bytes]:
    """Run `sh -c script sbx args...`; its exit code, stdout and stderr (each kept to `limit`)."""
    stream = ExecStream(engine, container_id)
    out, err = bytearray(), bytearray()
    try:
        await stream.start(["/bin/sh", "-c", script, "sbx", *args])
        async for kind, data in stream.frames():
            target = err if kind == STDERR else out
            if len(target) < limit:
                target += data[: limit - len(target)]
        return await stream.exit_code(), bytes(out), bytes(err)
    finally:
        stream.close()
