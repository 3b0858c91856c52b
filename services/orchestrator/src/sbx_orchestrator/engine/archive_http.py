"""Docker's archive API (`GET`/`PUT /containers/:id/archive`) spoken directly on the engine's
socket from the event loop, for the bulk bytes of uploads and downloads.

Through the docker SDK every byte crossed urllib3 in a worker thread (about 32 KiB chunks of
chunked encoding to parse on the way out, chunk headers to add on the way in) and one hand-over
between the thread and the event loop per piece: most of the orchestrator's CPU in a transfer
(PERFORMANCE.md, "Files"). Here:

- a download asks in HTTP/1.0, so Docker sends the tar as plain bytes until it closes the
  connection (no chunked encoding to undo) and the event loop reads them in large pieces;
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
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sbx_orchestrator.engine.files_common import FileOpError

READ_LIMIT = 4 * 1024 * 1024  # the stream's buffer: a whole piece of a download fits
DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Endpoint:
    """Where the engine's API is: a Unix socket path, or a TCP host and port."""

    unix_path: str | None = None
    host: str | None = None
    port: int = 0

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path, limit=READ_LIMIT)
        return await asyncio.open_connection(self.host, self.port, limit=READ_LIMIT)


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


async def _response_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise FileOpError("UNAVAILABLE", "The Docker engine's answer was unreadable.") from None
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


async def _error_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length", "")
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, asyncio.LimitOverrunError):
        if length.isdigit():
            return await reader.readexactly(min(int(length), 65536))
        return await reader.read(65536)
    return b""


def _target(version: str, container_id: str, path: str) -> str:
    query = urllib.parse.urlencode({"path": path})
    return f"/v{version}/containers/{urllib.parse.quote(container_id)}/archive?{query}"


async def get_archive(endpoint: Endpoint, version: str, container_id: str, path: str) -> AsyncIterator[bytes]:
    """The tar stream of `path`, as the socket gives it (any sizes)."""
    reader, writer = await endpoint.connect()
    try:
        writer.write(f"GET {_target(version, container_id, path)} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        status, headers = await _response_head(reader)
        if status != 200:
            raise _error(status, await _error_body(reader, headers))
        while data := await reader.read(READ_LIMIT):
            yield data
    finally:
        writer.transport.abort()


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
    reader, writer = await endpoint.connect()
    try:
        writer.write(
            (
                f"PUT {_target(version, container_id, directory)} HTTP/1.1\r\nHost: docker\r\n"
                f"Content-Type: application/x-tar\r\nContent-Length: {length}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        sent = 0
        answered_early = False
        try:
            async for data in body:
                sent += len(data)
                if sent > length:
                    raise FileOpError("VALIDATION_ERROR", "The body was longer than its Content-Length.")
                writer.write(data)
                if writer.transport.get_write_buffer_size():
                    await writer.drain()
        except (ConnectionError, BrokenPipeError):
            # Docker answered before taking it all (no such directory, a full disk): its answer
            # says why.
            answered_early = True
        if sent < length and not answered_early:
            # Docker would wait for the rest: the connection is cut instead, and its extraction
            # fails on the truncated tar (the caller removes the temporary file).
            raise FileOpError("VALIDATION_ERROR", "The body was shorter than its Content-Length.")
        status, headers = await _response_head(reader)
        if status // 100 != 2:
            raise _error(status, await _error_body(reader, headers))
    finally:
        writer.transport.abort()
