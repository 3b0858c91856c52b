"""The bytes of an upload or a download of a running runc sandbox, through Docker's archive API.

The agent (`files_agent.py`) pushes or pulls a file piece by piece through dockerd's exec stream
of its session: every byte crosses the shim's FIFO, the agent's `attach` process and a Unix
socket, one request per piece. `docker cp` hands dockerd one tar stream that dockerd reads or
writes itself, which was 3-5x faster here (PERFORMANCE.md, "Files"). So, under runc only:

- an upload is one `PUT /containers/:id/archive` of a one-entry tar naming the temporary file
  the agent made (`fwopen`) beside the target; the agent then renames it over the target
  (`fwcommit`) or removes it (`fwabort`), so the upload stays atomic and the agent's checks (the
  platform's directory, a directory at the target) still decide what may be written;
- a whole-file download is one `GET /containers/:id/archive`, its single tar entry unpacked on
  the fly (a few lines below: no `tarfile`, whose stream mode copies the rest of a chunk on every
  10 KiB read).

Docker extracts and archives chrooted into the container's root, so symlinks (the temporary
file's directory, or the file's) resolve within the sandbox as its own kernel resolves them
there; a sandbox that swaps a directory for a symlink mid-transfer can only redirect the bytes
within its own filesystem. Not under gVisor: it caches its root filesystem and does not see
files written from the host into a directory it has listed (docs/files.md), so gVisor sandboxes
keep the agent's path, as do paths on a tmpfs (Docker writes beneath it, not into it).

The bytes go on the engine's socket straight from the event loop (`archive_http.py`), where the
engine is on a Unix socket or plain TCP; an engine behind TLS or SSH goes through the docker SDK
in worker threads, which hand chunks to and from the event loop one at a time. Either way a slow
side holds the other back instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import docker.errors
from sbx_common.filestream import CHUNK

from sbx_orchestrator.engine import archive_http
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.engine.files_common import FileOpError
from sbx_orchestrator.engine.threaded import iterate_in_thread, wait

TRANSFER_THREADS = 16
# Downloads are handed on in pieces of exactly one NATS frame, which pass on without a copy.
READ_CHUNK = CHUNK
BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")
_SKIPPED = (b"x", b"g", b"L", b"K")  # PAX and GNU long-name headers: their data is metadata

_executor = ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="files-bulk")


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await anext(chunks)


def _octal(field: bytes) -> int:
    if field[:1] == b"\x80":  # base-256, for sizes past 8 GiB
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax_size(records: bytes) -> int | None:
    for line in records.split(b"\n"):
        _, _, record = line.partition(b" ")
        key, _, value = record.partition(b"=")
        if key == b"size":
            return int(value)
    return None


def _is_storage_full(exc: docker.errors.APIError) -> bool:
    text = str(exc.explanation or exc).lower()
    return "no space left" in text or "quota" in text


class BulkFiles:
    """Bytes in and out of one running runc container by Docker's archive API."""

    def __init__(self, engine: DockerEngine, container_id: str) -> None:
        self.engine = engine
        self.container_id = container_id

    async def put_file(self, path: str, chunks: AsyncIterator[bytes], size: int) -> None:
        """Write exactly `size` bytes from `chunks` to `path` (its directory exists), mode 0644
        as the agent makes it; fewer bytes than `size` fail the upload."""
        info = tarfile.TarInfo(posixpath.basename(path))
        info.size, info.mtime, info.mode = size, int(time.time()), 0o644
        header = info.tobuf(tarfile.PAX_FORMAT)
        padding = b"\0" * ((BLOCK - size % BLOCK) % BLOCK) + b"\0" * (2 * BLOCK)
        endpoint = self.engine.archive_endpoint
        if endpoint is None:
            await self._put_by_sdk(path, chunks, size, header, padding)
            return

        async def tar() -> AsyncIterator[bytes]:
            yield header
            sent = 0
            async for data in chunks:
                piece = data if len(data) <= size - sent else data[: size - sent]
                sent += len(piece)
                yield piece
                if sent == size:
                    break
            if sent == size:
                yield padding
            # else: the tar ends short, and put_archive refuses it without waiting for Docker.

        await archive_http.put_archive(
            endpoint,
            self.engine.api.api_version,
            self.container_id,
            posixpath.dirname(path),
            length=len(header) + size + len(padding),
            body=tar(),
        )

    async def _put_by_sdk(
        self, path: str, chunks: AsyncIterator[bytes], size: int, header: bytes, padding: bytes
    ) -> None:
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def body() -> Iterator[bytes]:
            yield header
            sent = 0
            while sent < size:
                try:
                    data = wait(asyncio.run_coroutine_threadsafe(_next(chunks), loop), stop)
                except StopAsyncIteration:
                    break
                if len(data) > size - sent:
                    data = data[: size - sent]
                sent += len(data)
                yield data
            if sent != size:
                # Docker then sees a truncated tar and fails the extraction: no short file.
                raise FileOpError("VALIDATION_ERROR", "The body was shorter than its Content-Length.")
            yield padding

        def put() -> None:
            try:
                self.engine.api.put_archive(self.container_id, posixpath.dirname(path), body())
            except docker.errors.APIError as exc:
                if _is_storage_full(exc):
                    raise FileOpError("STORAGE_FULL", "The sandbox's disk or volume is full.") from None
                if exc.status_code == 404:
                    raise FileOpError("NOT_FOUND", "No such file or directory.") from None
                raise FileOpError("UNAVAILABLE", "The file could not be written.") from None

        future = loop.run_in_executor(_executor, put)
        try:
            await asyncio.shield(future)
        except BaseException:
            # The worker may be waiting on the next chunk: it stops, and only then may the
            # caller remove the temporary file (Docker could otherwise create it again).
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.shield(future)
            raise

    async def read_file(self, path: str, length: int) -> AsyncIterator[bytes | bytearray]:
        """The first `length` bytes of the regular file at `path` (a final symlink not
        followed: the caller passes a resolved path), as Docker's tar brings them, in pieces of
        READ_CHUNK (the last one shorter)."""
        endpoint = self.engine.archive_endpoint
        if endpoint is not None:
            version = self.engine.api.api_version
            async with archive_http.get_archive(endpoint, version, self.container_id, path) as tar:
                async for data in _file_data(tar.read_exactly, length):
                    yield data
            return
        chunks = iterate_in_thread(_executor, self._sdk_archive(path))
        try:
            async for data in _file_data(_TarReader(chunks).take, length):
                yield data
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    def _sdk_archive(self, path: str) -> Callable[[], Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            try:
                stream, _ = self.engine.api.get_archive(self.container_id, path, chunk_size=READ_CHUNK)
            except docker.errors.NotFound:
                raise FileOpError("NOT_FOUND", "No such file or directory.") from None
            yield from stream

        return chunks


class _TarReader:
    """Exact reads from a stream of pieces of any size."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()

    async def more(self) -> bool:
        try:
            self.buffer += await anext(self.chunks)
        except StopAsyncIteration:
            return False
        return True

    async def take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self.more():
                raise FileOpError("UNAVAILABLE", "The file's archive ended early.")
        with memoryview(self.buffer) as view:
            taken = bytes(view[:size])
        del self.buffer[:size]
        return taken


async def _file_data(
    take: Callable[[int], Awaitable[bytes | bytearray]], length: int
) -> AsyncIterator[bytes | bytearray]:
    """The data of the first regular entry of a tar stream read with `take(n)` (exactly n
    bytes), at most `length` bytes, in pieces of READ_CHUNK (whole frames, which pass on without
    a copy); headers before it (PAX, GNU long names) are skipped."""
    pax_size: int | None = None
    while True:
        header = bytes(await take(BLOCK))
        if not header.strip(b"\0"):
            raise FileOpError("NOT_FOUND", "No such file.")
        kind = header[156:157]
        size = _octal(header[124:136])
        if kind in _SKIPPED:
            data = bytes(await take(size + (BLOCK - size % BLOCK) % BLOCK))[:size]
            if kind == b"x":
                pax_size = _pax_size(data)
            continue
        if kind not in _REGULAR:
            raise FileOpError("IS_A_DIRECTORY", "The path is not a regular file.")
        size = pax_size if pax_size is not None else size
        break
    left = min(size, length)
    while left > 0:
        piece = min(READ_CHUNK, left)
        yield await take(piece)
        left -= piece
