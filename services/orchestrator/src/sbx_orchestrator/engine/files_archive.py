"""File operations on a paused or stopped sandbox, through Docker's archive API.

`HEAD /containers/{id}/archive` stats a path, `get_archive` streams a tar of a file or tree and
`put_archive` extracts a tar into a directory: all three work whatever the container's state
(Docker mounts a stopped container's filesystem and volumes for the call) and resolve symlinks
within the container's root. Nothing runs inside a paused or stopped sandbox, so what needs a
process there: deleting and moving need the sandbox running, or paused under runc (FrozenFiles,
below), and an upload is written in place (there is no rename without a process): a failed
upload to a paused or stopped sandbox may leave part of the file.

The tar streams run in worker threads of their own (`TRANSFER_THREADS`), handing chunks to the
event loop through a small bounded queue, so a slow client holds back Docker rather than
filling memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import posixpath
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import IO, Any

import docker.errors
from sbx_common.codes import RpcErrorCode
from sbx_common.messages import FileEntry

from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.engine.files_common import FileOpError, make_entry, type_of_mode
from sbx_orchestrator.engine.threaded import iterate_in_thread

TRANSFER_THREADS = 16
READ_CHUNK = 256 * 1024
QUEUE_CHUNKS = 4
MAX_SYMLINKS = 16
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27
_GO_MODE_TYPES = 0xFFF00000 & ~(1 << 31) & ~(1 << 27)

_HELPER_CODES: frozenset[RpcErrorCode] = frozenset(
    {"NOT_FOUND", "NOT_A_DIRECTORY", "IS_A_DIRECTORY", "CONFLICT", "STORAGE_FULL", "VALIDATION_ERROR"}
)

_executor = ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="files")


class _Stream(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (Docker's response body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await anext(chunks)


def _entry_of_stat(path: str, stat: dict[str, Any]) -> FileEntry:
    go_mode = int(stat.get("mode") or 0)
    if go_mode & _GO_MODE_DIR:
        kind = "dir"
    elif go_mode & _GO_MODE_SYMLINK:
        kind = "symlink"
    elif go_mode & _GO_MODE_TYPES:
        kind = "other"
    else:
        kind = "file"
    mtime: float | None = None
    raw = str(stat.get("mtime") or "")
    with contextlib.suppress(ValueError):
        # Go's RFC 3339 with nanoseconds: keep microseconds for Python.
        head, _, tail = raw.rstrip("Z").partition(".")
        fraction = "".join(ch for ch in tail if ch.isdigit())[:6]
        mtime = datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00").timestamp()
    return make_entry(path, kind, int(stat.get("size") or 0), go_mode & 0o777, mtime)  # type: ignore[arg-type]


def _tar_entry(parent: str, info: tarfile.TarInfo) -> FileEntry:
    name = info.name.split("/", 1)[1] if "/" in info.name else info.name
    path = posixpath.join(parent, name)
    kind_mode = (
        0o040000 if info.isdir() else 0o120000 if info.issym() else 0o100000 if info.isfile() else 0o010000
    )
    return make_entry(path, type_of_mode(kind_mode), info.size, info.mode, float(info.mtime))


class ArchiveFiles:
    """The file operations of one paused or stopped container."""

    def __init__(self, engine: DockerEngine, container_id: str) -> None:
        self.engine = engine
        self.container_id = container_id

    def _stat_sync(self, path: str) -> dict[str, Any] | None:
        api = self.engine.api
        url = api._url("/containers/{0}/archive", self.container_id)  # type: ignore[attr-defined]
        response = api.head(url, params={"path": path}, timeout=api.timeout)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise FileOpError("NOT_FOUND", "No such file or directory.")
        header = response.headers.get("X-Docker-Container-Path-Stat", "")
        stat: dict[str, Any] = json.loads(base64.b64decode(header)) if header else {}
        return stat

    async def _stat(self, path: str) -> dict[str, Any] | None:
        return await self.engine.call("archive_stat", self._stat_sync, path)

    async def stat(self, path: str, follow: bool = False) -> FileEntry:
        if follow:
            _, entry = await self.resolve(path)
            return entry.model_copy(update={"path": path, "name": posixpath.basename(path) or "/"})
        stat = await self._stat(path)
        if stat is None:
            raise FileOpError("NOT_FOUND", "No such file or directory.")
        return _entry_of_stat(path, stat)

    async def resolve(self, path: str) -> tuple[str, FileEntry]:
        """Follow a final symlink (within the sandbox) to what it names."""
        for _ in range(MAX_SYMLINKS):
            stat = await self._stat(path)
            if stat is None:
                raise FileOpError("NOT_FOUND", "No such file or directory.")
            target = str(stat.get("linkTarget") or "")
            if not target:
                return path, _entry_of_stat(path, stat)
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            path = "/" + path.lstrip("/")
        raise FileOpError("VALIDATION_ERROR", "Too many levels of symbolic links.")

    async def _tar_of(self, path: str) -> AsyncIterator[tuple[tarfile.TarInfo, bytes | None]]:
        """Members of `get_archive(path)` (and each regular file's bytes, chunk by chunk), read in
        a worker thread."""

        def members() -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
            try:
                chunks, _ = self.engine.api.get_archive(self.container_id, path, chunk_size=READ_CHUNK)
            except docker.errors.NotFound:
                raise FileOpError("NOT_FOUND", "No such file or directory.") from None
            with tarfile.open(fileobj=_Stream(iter(chunks)), mode="r|") as tar:
                for info in tar:
                    yield info, None
                    source = tar.extractfile(info) if info.isfile() else None
                    while source is not None:
                        data = source.read(READ_CHUNK)
                        if not data:
                            break
                        yield info, data

        async for member in iterate_in_thread(_executor, members, QUEUE_CHUNKS):
            yield member

    async def list_dir(self, path: str) -> list[FileEntry]:
        resolved, entry = await self.resolve(path)
        if entry.type != "dir":
            raise FileOpError("NOT_A_DIRECTORY", "The path is not a directory.")
        entries = []
        async for info, data in self._tar_of(resolved):
            if data is None and info.name.count("/") == 1 and not info.name.endswith("/"):
                entries.append(_tar_entry(path, info))
        return sorted(entries, key=lambda e: e.name)

    async def read(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes | bytearray]:
        resolved, entry = await self.resolve(path)
        if entry.type == "dir":
            raise FileOpError("IS_A_DIRECTORY", "The path is a directory.")
        skip, left = offset, length
        async for info, data in self._tar_of(resolved):
            if data is None or not info.isfile():
                continue
            piece = data
            if skip:
                dropped = min(skip, len(piece))
                piece, skip = piece[dropped:], skip - dropped
            if left is not None:
                piece = piece[:left]
                left -= len(piece)
            if piece:
                yield piece
            if left == 0:
                return

    async def tar_read(self, path: str) -> AsyncIterator[bytes]:
        """Docker's tar of the file or tree at `path` (a final symlink followed), as it comes."""
        resolved, _ = await self.resolve(path)

        def chunks() -> Iterator[bytes]:
            stream, _ = self.engine.api.get_archive(self.container_id, resolved, chunk_size=READ_CHUNK)
            yield from stream

        async for data in iterate_in_thread(_executor, chunks, QUEUE_CHUNKS):
            yield data

    async def tar_write(self, directory: str, prefixes: list[str], spool: IO[bytes]) -> None:
        """Extract a checked tar (spooled) into `directory` (made if missing)."""
        stat = await self._stat(directory)
        if stat is None:
            await self.mkdir(directory, parents=True)
        elif not int(stat.get("mode") or 0) & _GO_MODE_DIR:
            raise FileOpError("NOT_A_DIRECTORY", "The path is not a directory.")
        for prefix in prefixes:
            found = await self._stat(posixpath.join(directory, prefix))
            if found is not None and found.get("linkTarget"):
                raise FileOpError(
                    "VALIDATION_ERROR", "An archive entry would be written through a symlink in the sandbox."
                )
        await asyncio.get_running_loop().run_in_executor(_executor, self._put_sync, directory, spool)

    async def _missing_parents(self, directory: str) -> list[str]:
        """The ancestors of `directory` (itself included) that do not exist, outermost first."""
        missing: list[str] = []
        current = directory
        while current != "/":
            stat = await self._stat(current)
            if stat is not None:
                if not int(stat.get("mode") or 0) & _GO_MODE_DIR and not stat.get("linkTarget"):
                    raise FileOpError("NOT_A_DIRECTORY", "A path component is not a directory.")
                break
            missing.insert(0, current)
            current = posixpath.dirname(current)
        return missing

    def _put_sync(self, base: str, body: Iterator[bytes] | IO[bytes]) -> None:
        try:
            self.engine.api.put_archive(self.container_id, base, body)
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "no space left" in text.lower() or "quota" in text.lower():
                raise FileOpError("STORAGE_FULL", "The sandbox's disk or volume is full.") from None
            if exc.status_code == 404:
                raise FileOpError("NOT_FOUND", "No such file or directory.") from None
            raise FileOpError("CONFLICT", text[:300]) from None

    @staticmethod
    def _dir_headers(base: str, missing: list[str]) -> bytes:
        out = b""
        for directory in missing:
            info = tarfile.TarInfo(posixpath.relpath(directory, base))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            out += info.tobuf(tarfile.PAX_FORMAT)
        return out

    async def mkdir(self, path: str, parents: bool) -> FileEntry:
        stat = await self._stat(path)
        if stat is not None:
            entry = _entry_of_stat(path, stat)
            if parents and entry.type == "dir":
                return entry
            raise FileOpError("CONFLICT", "The path exists already.")
        parent = posixpath.dirname(path)
        missing = await self._missing_parents(parent)
        if missing and not parents:
            raise FileOpError("NOT_FOUND", "The parent directory does not exist.")
        base = posixpath.dirname(missing[0]) if missing else parent
        body = self._dir_headers(base, [*missing, path]) + b"\0" * 1024
        await self.engine.call("put_archive", self._put_sync, base, iter([body]))
        return await self.stat(path)

    async def write(
        self, path: str, chunks: AsyncIterator[bytes], mode: int | None, size: int | None
    ) -> FileEntry:
        existing = await self._stat(path)
        if existing is not None and _entry_of_stat(path, existing).type == "dir":
            raise FileOpError("IS_A_DIRECTORY", "The path is a directory.")
        parent = posixpath.dirname(path)
        missing = await self._missing_parents(parent)
        base = posixpath.dirname(missing[0]) if missing else parent
        loop = asyncio.get_running_loop()
        spool: IO[bytes] | None = None
        try:
            if size is None:
                # A tar header states the size first: a body of unknown length is spooled to a
                # temporary file (on disk, never in memory) before it goes to Docker.
                spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed in `finally`)
                size = 0
                async for data in chunks:
                    await loop.run_in_executor(_executor, spool.write, data)
                    size += len(data)
                spool.seek(0)
            info = tarfile.TarInfo(posixpath.relpath(path, base))
            info.size, info.mtime = size, int(time.time())
            info.mode = (mode if mode is not None else 0o644) & 0o7777
            header = self._dir_headers(base, missing) + info.tobuf(tarfile.PAX_FORMAT)
            padding = b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024
            body = self._body(loop, header, chunks, spool, size=size, padding=padding)
            await loop.run_in_executor(_executor, self._put_sync, base, body)
        finally:
            if spool is not None:
                spool.close()
        return await self.stat(path)

    @staticmethod
    def _body(
        loop: asyncio.AbstractEventLoop,
        header: bytes,
        chunks: AsyncIterator[bytes],
        spool: IO[bytes] | None,
        *,
        size: int,
        padding: bytes,
    ) -> Iterator[bytes]:
        """The tar body, produced in the worker thread as Docker reads it."""
        yield header
        sent = 0
        while sent < size:
            if spool is not None:
                data = spool.read(min(READ_CHUNK, size - sent))
            else:
                try:
                    data = asyncio.run_coroutine_threadsafe(_next(chunks), loop).result()
                except StopAsyncIteration:
                    break
            if not data:
                break
            data = data[: size - sent]
            sent += len(data)
            yield data
        if sent != size:
            # Fewer bytes than declared: stop with an error rather than a short file.
            raise FileOpError("VALIDATION_ERROR", "The body was shorter than its Content-Length.")
        yield padding


def can_enter(pid: int, container_id: str) -> bool:
    """Whether `frozen_helper` can enter this container's root from here: it runs as root, and
    in the container's host PID namespace (`pid` is the container's)."""
    if pid <= 0 or os.geteuid() != 0:
        return False
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as cgroups:
            return container_id in cgroups.read()
    except OSError:
        return False


class FrozenFiles(ArchiveFiles):
    """A paused runc container: the archive API, and delete, move and the rename of an upload
    by `frozen_helper`, a short-lived process of the orchestrator's that enters the container's
    root (its processes are frozen meanwhile). Under gVisor the host's view of the files is not the sandbox's
    (docs/files.md), so a paused gVisor sandbox stays ArchiveFiles."""

    def __init__(self, engine: DockerEngine, container_id: str, pid: int) -> None:
        super().__init__(engine, container_id)
        self.pid = pid

    async def _helper(self, request: dict[str, Any]) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sbx_orchestrator.engine.frozen_helper",
            str(self.pid),
            self.container_id,
            json.dumps(request),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        try:
            answer: dict[str, Any] = json.loads(out or b"{}")
        except ValueError:
            answer = {"code": "UNAVAILABLE", "message": "The change could not be made."}
        if answer.get("code"):
            code: RpcErrorCode = "UNAVAILABLE"
            for known in _HELPER_CODES:
                if known == answer["code"]:
                    code = known
            raise FileOpError(code, str(answer.get("message") or "The change could not be made."))
        return answer

    async def delete(self, path: str, recursive: bool) -> None:
        await self._helper({"op": "delete", "path": path, "recursive": recursive})

    async def write(
        self, path: str, chunks: AsyncIterator[bytes], mode: int | None, size: int | None
    ) -> FileEntry:
        """Atomic, as on a running sandbox: the bytes go to a temporary name beside the target
        by the archive API, which the helper then renames over it (or removes on any failure)."""
        existing = await self._stat(path)
        if existing is not None and _entry_of_stat(path, existing).type == "dir":
            raise FileOpError("IS_A_DIRECTORY", "The path is a directory.")
        temporary = posixpath.join(posixpath.dirname(path), f".sbx-upload-{uuid.uuid4().hex}")
        try:
            await super().write(temporary, chunks, mode, size)
            await self._helper({"op": "move", "path": temporary, "to": path, "overwrite": True})
        except BaseException:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._helper({"op": "delete", "path": temporary, "recursive": False}))
            raise
        return await self.stat(path)

    async def move(self, source: str, target: str, overwrite: bool) -> FileEntry:
        answer = await self._helper({"op": "move", "path": source, "to": target, "overwrite": overwrite})
        raw = answer.get("entry") or {}
        mode = int(raw.get("mode") or 0)
        return make_entry(
            target, type_of_mode(mode), int(raw.get("size") or 0), mode, float(raw.get("mtime") or 0)
        )
