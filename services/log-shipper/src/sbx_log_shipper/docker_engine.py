"""A small asyncio client for the few Docker Engine API calls the log shipper makes.

The docker SDK is synchronous and its log stream either merges stdout and stderr or costs a
thread and several small reads per line. Following logs at tens of thousands of lines a second
is cheaper on the event loop: one connection per container (HTTP/1.0, so the body is not
chunked), read in 256 KiB blocks, decoded by the pure parsers in `frames.py`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from sbx_log_shipper.frames import ChunkedDecoder

READ_SIZE = 256 * 1024


class DockerError(Exception):
    """The engine answered with an error status (or could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"docker engine: {status} {message}")
        self.status = status


class ContainerNotFound(DockerError):
    pass


class _Response:
    def __init__(self, status: int, headers: dict[str, str], reader: asyncio.StreamReader) -> None:
        self.status = status
        self.headers = headers
        self.reader = reader

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, de-chunked when the engine uses chunked encoding."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            decoder = ChunkedDecoder()
            while not decoder.done:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    return
                body = decoder.feed(data)
                if body:
                    yield body
            return
        remaining = int(self.headers["content-length"]) if "content-length" in self.headers else None
        while remaining is None or remaining > 0:
            data = await self.reader.read(READ_SIZE if remaining is None else min(READ_SIZE, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class DockerEngine:
    """Talks HTTP/1.1 to the engine over its unix socket (or TCP), one connection per call."""

    def __init__(self, docker_host: str) -> None:
        url = urlsplit(docker_host)
        self._unix_path = url.path if url.scheme in ("unix", "") else None
        self._tcp = (url.hostname or "127.0.0.1", url.port or 2375) if url.scheme in ("tcp", "http") else None
        if self._unix_path is None and self._tcp is None:
            raise ValueError(f"unsupported docker host scheme: {url.scheme}")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self._unix_path is not None:
                return await asyncio.open_unix_connection(self._unix_path, limit=READ_SIZE * 4)
            assert self._tcp is not None
            return await asyncio.open_connection(*self._tcp, limit=READ_SIZE * 4)
        except OSError as exc:
            raise DockerError(0, f"cannot connect: {exc}") from exc

    async def _request(
        self, path: str, query: dict[str, Any] | None = None, version: str = "1.1"
    ) -> tuple[_Response, asyncio.StreamWriter]:
        reader, writer = await self._open()
        target = path + ("?" + urlencode(query) if query else "")
        request = f"GET {target} HTTP/{version}\r\nHost: docker\r\nUser-Agent: sbx-log-shipper\r\n\r\n"
        writer.write(request.encode())
        try:
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise DockerError(0, "malformed response from the engine")
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        except (OSError, asyncio.IncompleteReadError) as exc:
            writer.close()
            raise DockerError(0, f"connection failed: {exc}") from exc
        response = _Response(int(parts[1]), headers, reader)
        if response.status >= 400:
            try:
                message = json.loads(await response.body()).get("message", "")
            except (ValueError, AttributeError, OSError):
                message = ""
            writer.close()
            error = ContainerNotFound if response.status == 404 else DockerError
            raise error(response.status, message)
        return response, writer

    async def get_json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        response, writer = await self._request(path, query)
        try:
            return json.loads(await response.body())
        finally:
            writer.close()

    async def ping(self) -> bool:
        try:
            await self.get_json("/version")
        except DockerError:
            return False
        return True

    async def running_containers(self, label_filter: list[str]) -> list[dict[str, Any]]:
        """Running containers carrying every label of `label_filter` (`key=value` or `key`)."""
        filters = {"label": label_filter, "status": ["running"]}
        query = {"filters": json.dumps(filters)}
        result: list[dict[str, Any]] = await self.get_json("/containers/json", query)
        return result

    async def inspect(self, container: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.get_json(f"/containers/{quote(container, safe='')}/json")
        return result

    async def logs(self, container: str, since: str | None) -> AsyncIterator[bytes]:
        """Follow a container's log stream (stdout and stderr, with timestamps) from `since`.

        Yields the raw body: multiplexed frames, or plain text for a TTY container. Ends when
        the container stops.
        """
        query = {"follow": "1", "stdout": "1", "stderr": "1", "timestamps": "1"}
        if since is not None:
            query["since"] = since
        # HTTP/1.0: the engine cannot answer with chunked encoding, so the body is the frames
        # themselves until the connection closes. Over HTTP/1.1 it flushes every log message as
        # a chunk of its own, and taking one chunk header off per line cost as much as the line.
        path = f"/containers/{quote(container, safe='')}/logs"
        response, writer = await self._request(path, query, version="1.0")
        try:
            async for chunk in response.chunks():
                yield chunk
        finally:
            writer.close()
