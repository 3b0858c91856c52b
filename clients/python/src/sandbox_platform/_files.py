"""A sandbox's files (`sandbox.files`): list, stat, mkdir, move, remove, and bytes streamed both
ways (uploads from bytes, files or iterables; downloads to bytes, files or iterators)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from sandbox_platform import _async_streams
from sandbox_platform import _routes as routes
from sandbox_platform._core import decode
from sandbox_platform._sockets import NORMAL_CLOSURE, closed_code, gave_up, handshake_error, json_frame
from sandbox_platform._sync_streams import open_socket
from sandbox_platform._transport import AsyncTransport, SyncTransport
from sandbox_platform.errors import error_from_close
from sandbox_platform.models import ArchiveResult, FileChange, FileEntry, UploadResult

CHUNK = 1024 * 1024
UPLOAD_TIMEOUT = httpx.Timeout(600.0, connect=10.0)

#: What an upload accepts: bytes, text, an open binary file, a local path, or an iterable of bytes.
Content = bytes | str | IO[bytes] | Iterable[bytes]
AsyncContent = bytes | str | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]


def _content_path(sandbox_id: str) -> str:
    return f"/sandboxes/{routes._id(sandbox_id)}/files/content"


def _archive_path(sandbox_id: str) -> str:
    return f"/sandboxes/{routes._id(sandbox_id)}/files/archive"


def _mode_text(mode: int | str | None) -> str | None:
    if mode is None:
        return None
    return f"{mode:04o}" if isinstance(mode, int) else mode


def _range(offset: int | None, length: int | None) -> dict[str, str]:
    if offset is None and length is None:
        return {}
    start = offset or 0
    end = "" if length is None else str(start + length - 1)
    return {"Range": f"bytes={start}-{end}"}


def _file_chunks(source: IO[bytes]) -> Iterator[bytes]:
    while data := source.read(CHUNK):
        yield data


def _body(data: Content) -> tuple[Any, dict[str, str]]:
    """The request body and its headers (Content-Length whenever the size is known)."""
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, (bytes, bytearray)):
        return bytes(data), {}
    if hasattr(data, "read"):
        source: IO[bytes] = data  # type: ignore[assignment]
        headers = {}
        with contextlib.suppress(OSError, AttributeError, ValueError):
            headers["Content-Length"] = str(os.fstat(source.fileno()).st_size - source.tell())
        return _file_chunks(source), headers
    return data, {}


def _change_of(raw: str | bytes) -> FileChange | None:
    """A watch socket's frame as a change; None for the others (`ready`, `pong`, unreadable)."""
    frame = json_frame(raw)
    if frame is None or frame.get("type") in ("ready", "pong"):
        return None
    return FileChange.model_validate(frame)


def _ended(exc: ConnectionClosed) -> None:
    """A watch socket closed: normally (the watch ended) returns, otherwise raises its error."""
    code, reason = closed_code(exc)
    if code != NORMAL_CLOSURE:
        raise error_from_close(code, reason) from None


class FileWatch:
    """Changes under a directory of a running sandbox, as they happen (`sandbox.files.watch`).

    Made once the watch is in place (changes from then on are reported). Iterate for FileChange
    objects; iteration ends when the watched directory is deleted or the watch is closed. A
    watch is not reopened by itself (changes in between would be lost unseen): when the sandbox
    stops or pauses it raises NotRunningError, when the service restarts APIError; list the
    directory and watch again."""

    def __init__(self, transport: SyncTransport, sandbox_id: str, path: str, recursive: bool) -> None:
        params = {"path": path, "recursive": "true" if recursive else "false"}
        try:
            self._socket = open_socket(transport.config, routes.files_watch_socket_path(sandbox_id), params)
        except InvalidHandshake as exc:
            raise handshake_error(exc) or gave_up("file watch", exc) from exc
        self.path = path
        try:
            while True:
                frame = json_frame(self._socket.recv())
                if frame is not None and frame.get("type") == "ready":
                    self.path = str(frame.get("path") or path)
                    break
        except ConnectionClosed as exc:
            self._socket.close()
            raise error_from_close(*closed_code(exc)) from None

    def __iter__(self) -> Iterator[FileChange]:
        while True:
            try:
                raw = self._socket.recv()
            except ConnectionClosed as exc:
                _ended(exc)
                return
            change = _change_of(raw)
            if change is not None:
                yield change

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> FileWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncFileWatch:
    """`FileWatch` for the asyncio client (`async with sandbox.files.watch(path) as watch:`, then
    `async for change in watch`): made once the watch is in place, the same end and errors."""

    def __init__(self, socket: AsyncConnection, path: str) -> None:
        self._socket = socket
        self.path = path

    @classmethod
    async def open(
        cls, transport: AsyncTransport, sandbox_id: str, path: str, recursive: bool
    ) -> AsyncFileWatch:
        params = {"path": path, "recursive": "true" if recursive else "false"}
        try:
            socket = await _async_streams.open_socket(
                transport.config, routes.files_watch_socket_path(sandbox_id), params
            )
        except InvalidHandshake as exc:
            raise handshake_error(exc) or gave_up("file watch", exc) from exc
        try:
            while True:
                frame = json_frame(await socket.recv())
                if frame is not None and frame.get("type") == "ready":
                    return cls(socket, str(frame.get("path") or path))
        except ConnectionClosed as exc:
            await socket.close()
            raise error_from_close(*closed_code(exc)) from None
        except BaseException:
            await socket.close()
            raise

    def __aiter__(self) -> AsyncIterator[FileChange]:
        return self._changes()

    async def _changes(self) -> AsyncIterator[FileChange]:
        while True:
            try:
                raw = await self._socket.recv()
            except ConnectionClosed as exc:
                _ended(exc)
                return
            change = _change_of(raw)
            if change is not None:
                yield change

    async def close(self) -> None:
        await self._socket.close()

    async def __aenter__(self) -> AsyncFileWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SandboxFiles:
    """The files of one sandbox (running, paused or stopped)."""

    def __init__(self, transport: SyncTransport, sandbox_id: str) -> None:
        self._transport = transport
        self._sandbox_id = sandbox_id

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        config = self._transport.config
        return {**config.headers, **config.credentials.headers(), **(extra or {})}

    def list(self, path: str = "/") -> list[FileEntry]:
        """The entries of a directory, sorted by name."""
        return self._transport.request(routes.list_files(self._sandbox_id, path))

    def stat(self, path: str) -> FileEntry:
        return self._transport.request(routes.stat_file(self._sandbox_id, path))

    def watch(self, path: str, recursive: bool = False) -> FileWatch:
        """Watch a directory (and, with `recursive`, everything under it) of the running
        sandbox; use as a context manager and iterate. See FileWatch."""
        return FileWatch(self._transport, self._sandbox_id, path, recursive)

    def mkdir(self, path: str, parents: bool = False) -> FileEntry:
        return self._transport.request(routes.make_directory(self._sandbox_id, path, parents))

    def move(self, source: str, target: str, overwrite: bool = False) -> FileEntry:
        return self._transport.request(routes.move_file(self._sandbox_id, source, target, overwrite))

    def remove(self, path: str, recursive: bool = False) -> None:
        self._transport.request(routes.delete_file(self._sandbox_id, path, recursive))

    def write(
        self, path: str, data: Content, mode: int | str | None = None, size: int | None = None
    ) -> UploadResult:
        """Write a file (parents created), streaming `data` (bytes, text, a binary file object or
        an iterable of bytes); `mode` as an int (0o600) or octal text ("0600"); `size` declares
        an iterable's length (the API then refuses one over its limit before it is sent)."""
        body, headers = _body(data)
        if size is not None:
            headers["Content-Length"] = str(size)
        params = {"path": path, **({"mode": _mode_text(mode)} if mode is not None else {})}
        response = self._transport.http.put(
            self._transport.config.url(_content_path(self._sandbox_id)),
            params=params,
            content=body,
            headers=self._headers(headers),
            timeout=UPLOAD_TIMEOUT,
        )
        answer = decode(response)
        if answer.status >= 400:
            raise answer.error()
        return UploadResult.model_validate(answer.body["data"])

    def upload(self, local_path: str | Path, path: str, mode: int | str | None = None) -> UploadResult:
        """Upload a local file, streamed from disk."""
        with Path(local_path).open("rb") as source:
            return self.write(path, source, mode)

    @contextlib.contextmanager
    def _stream(self, path: str, offset: int | None, length: int | None) -> Iterator[httpx.Response]:
        with self._transport.http.stream(
            "GET",
            self._transport.config.url(_content_path(self._sandbox_id)),
            params={"path": path},
            headers=self._headers(_range(offset, length)),
            timeout=UPLOAD_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise decode(response).error()
            yield response

    def iter_bytes(self, path: str, offset: int | None = None, length: int | None = None) -> Iterator[bytes]:
        """A file's bytes as they arrive (optionally `length` bytes from `offset`)."""
        with self._stream(path, offset, length) as response:
            yield from response.iter_bytes(CHUNK)

    def read(self, path: str, offset: int | None = None, length: int | None = None) -> bytes:
        return b"".join(self.iter_bytes(path, offset, length))

    def iter_archive(self, path: str) -> Iterator[bytes]:
        """A tar of the file or tree at `path` (its top entry named after it), as it arrives."""
        with self._transport.http.stream(
            "GET",
            self._transport.config.url(_archive_path(self._sandbox_id)),
            params={"path": path},
            headers=self._headers(),
            timeout=UPLOAD_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise decode(response).error()
            yield from response.iter_bytes(CHUNK)

    def download_archive(self, path: str, local_path: str | Path) -> int:
        """Save a tar of the file or tree at `path` to a local file; the bytes written."""
        written = 0
        with Path(local_path).open("wb") as out:
            for data in self.iter_archive(path):
                out.write(data)
                written += len(data)
        return written

    def upload_archive(self, path: str, data: Content) -> ArchiveResult:
        """Extract a tar (bytes, a binary file, a local file's object or an iterable) into the
        directory `path`; an entry that would land outside it refuses the whole archive."""
        body, headers = _body(data)
        response = self._transport.http.put(
            self._transport.config.url(_archive_path(self._sandbox_id)),
            params={"path": path},
            content=body,
            headers=self._headers(headers),
            timeout=UPLOAD_TIMEOUT,
        )
        answer = decode(response)
        if answer.status >= 400:
            raise answer.error()
        return ArchiveResult.model_validate(answer.body["data"])

    def download(self, path: str, local_path: str | Path) -> int:
        """Save a file to a local path, streamed to disk; the number of bytes written."""
        written = 0
        with Path(local_path).open("wb") as out:
            for data in self.iter_bytes(path):
                out.write(data)
                written += len(data)
        return written


async def _async_chunks(data: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(data, AsyncIterable):
        async for chunk in data:
            yield chunk
    else:
        for chunk in data:
            yield chunk


class AsyncSandboxFiles:
    """The files of one sandbox, for the asyncio client (the methods of `SandboxFiles`, awaited)."""

    def __init__(self, transport: AsyncTransport, sandbox_id: str) -> None:
        self._transport = transport
        self._sandbox_id = sandbox_id

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        config = self._transport.config
        return {**config.headers, **config.credentials.headers(), **(extra or {})}

    async def list(self, path: str = "/") -> list[FileEntry]:
        return await self._transport.request(routes.list_files(self._sandbox_id, path))

    async def stat(self, path: str) -> FileEntry:
        return await self._transport.request(routes.stat_file(self._sandbox_id, path))

    def watch(self, path: str, recursive: bool = False) -> _async_streams.Opening[AsyncFileWatch]:
        """Watch a directory (and, with `recursive`, everything under it) of the running
        sandbox: `async with sandbox.files.watch(path) as watch: async for change in watch`
        (or `watch = await sandbox.files.watch(path)`, then `await watch.close()`)."""
        return _async_streams.Opening(
            lambda: AsyncFileWatch.open(self._transport, self._sandbox_id, path, recursive),
            AsyncFileWatch.close,
        )

    async def mkdir(self, path: str, parents: bool = False) -> FileEntry:
        return await self._transport.request(routes.make_directory(self._sandbox_id, path, parents))

    async def move(self, source: str, target: str, overwrite: bool = False) -> FileEntry:
        return await self._transport.request(routes.move_file(self._sandbox_id, source, target, overwrite))

    async def remove(self, path: str, recursive: bool = False) -> None:
        await self._transport.request(routes.delete_file(self._sandbox_id, path, recursive))

    async def write(self, path: str, data: AsyncContent, mode: int | str | None = None) -> UploadResult:
        if isinstance(data, AsyncIterable):
            body: Any = _async_chunks(data)
            headers: dict[str, str] = {}
        else:
            body, headers = _body(data)
            if not isinstance(body, bytes):
                body = _async_chunks(body)
        params = {"path": path, **({"mode": _mode_text(mode)} if mode is not None else {})}
        response = await self._transport.http.put(
            self._transport.config.url(_content_path(self._sandbox_id)),
            params=params,
            content=body,
            headers=self._headers(headers),
            timeout=UPLOAD_TIMEOUT,
        )
        answer = decode(response)
        if answer.status >= 400:
            raise answer.error()
        return UploadResult.model_validate(answer.body["data"])

    async def upload(self, local_path: str | Path, path: str, mode: int | str | None = None) -> UploadResult:
        # Opening is quick; the bytes are then read chunk by chunk as httpx sends them.
        with Path(local_path).open("rb") as source:  # noqa: ASYNC230
            return await self.write(path, source, mode)

    async def iter_bytes(
        self, path: str, offset: int | None = None, length: int | None = None
    ) -> AsyncIterator[bytes]:
        async with self._transport.http.stream(
            "GET",
            self._transport.config.url(_content_path(self._sandbox_id)),
            params={"path": path},
            headers=self._headers(_range(offset, length)),
            timeout=UPLOAD_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise decode(response).error()
            async for data in response.aiter_bytes(CHUNK):
                yield data

    async def read(self, path: str, offset: int | None = None, length: int | None = None) -> bytes:
        return b"".join([data async for data in self.iter_bytes(path, offset, length)])

    async def iter_archive(self, path: str) -> AsyncIterator[bytes]:
        async with self._transport.http.stream(
            "GET",
            self._transport.config.url(_archive_path(self._sandbox_id)),
            params={"path": path},
            headers=self._headers(),
            timeout=UPLOAD_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise decode(response).error()
            async for data in response.aiter_bytes(CHUNK):
                yield data

    async def upload_archive(self, path: str, data: AsyncContent) -> ArchiveResult:
        if isinstance(data, AsyncIterable):
            body: Any = _async_chunks(data)
            headers: dict[str, str] = {}
        else:
            body, headers = _body(data)
            if not isinstance(body, bytes):
                body = _async_chunks(body)
        response = await self._transport.http.put(
            self._transport.config.url(_archive_path(self._sandbox_id)),
            params={"path": path},
            content=body,
            headers=self._headers(headers),
            timeout=UPLOAD_TIMEOUT,
        )
        answer = decode(response)
        if answer.status >= 400:
            raise answer.error()
        return ArchiveResult.model_validate(answer.body["data"])

    async def download(self, path: str, local_path: str | Path) -> int:
        written = 0
        with Path(local_path).open("wb") as out:  # noqa: ASYNC230 (written chunk by chunk)
            async for data in self.iter_bytes(path):
                out.write(data)
                written += len(data)
        return written
