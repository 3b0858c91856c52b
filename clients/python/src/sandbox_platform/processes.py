"""Background processes of a sandbox: `sandbox.processes.start(...)` returns a `Process` that
keeps running, with its output kept, whatever happens to this client.

`Process.stream()` follows the output through the process's WebSocket from a seq on (kept chunks,
then live ones as they are stored), and opens it again from the last seq received when it drops,
so nothing is lost or repeated. `sbx process attach` uses the same socket for interactive use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from sandbox_platform import _async_streams, _sync_streams
from sandbox_platform import _routes as routes
from sandbox_platform.models import OutputChunk, ProcessInfo, ProcessOutput

if TYPE_CHECKING:
    from sandbox_platform._transport import AsyncTransport, SyncTransport

#: How often a running process's status is read again while waiting for its end.
POLL_SECONDS = 0.2


def start_options(
    *,
    env: Mapping[str, str] | None,
    workdir: str | None,
    tty: bool,
    cols: int | None,
    rows: int | None,
    timeout: float | None,
    stdin: bool,
) -> dict[str, Any]:
    return {
        "env": dict(env) if env else None,
        "workdir": workdir,
        "tty": tty or None,
        "cols": cols,
        "rows": rows,
        "timeoutSeconds": timeout,
        "stdin": stdin or None,
    }


class Process(ProcessInfo):
    """A background process (sync client): its fields, and methods that act on it."""

    _transport: SyncTransport = PrivateAttr()

    @classmethod
    def bind(cls, transport: SyncTransport, info: ProcessInfo) -> Process:
        process = cls.model_validate(info.to_api())
        process._transport = transport
        return process

    def _assign(self, info: ProcessInfo) -> Process:
        for name in type(info).model_fields:
            setattr(self, name, getattr(info, name))
        return self

    def refresh(self) -> Process:
        return self._assign(self._transport.request(routes.get_process(self.sandbox_id, self.id)))

    def output(self, since: int = 0, limit: int | None = None, encoding: str = "text") -> ProcessOutput:
        """Kept output after seq `since` (a page: call again from `next_since`)."""
        return self._transport.request(
            routes.process_output(self.sandbox_id, self.id, since, limit, encoding)
        )

    def stream(self, since: int = 0, encoding: str = "text") -> Iterator[OutputChunk]:
        """Every chunk after seq `since`, as it comes, until the process has ended (through its
        WebSocket, reopened from the last seq after a dropped connection)."""
        return _sync_streams.process_output(self._transport, self.sandbox_id, self.id, since, encoding)

    def send_stdin(self, data: bytes | str, eof: bool = False) -> int:
        """Write to the process's stdin (`eof=True` closes it afterwards); the bytes written."""
        raw = data.encode() if isinstance(data, str) else data
        return self._transport.request(routes.process_stdin(self.sandbox_id, self.id, raw, eof))

    def signal(self, signal: str = "TERM") -> Process:
        """Send a signal ("TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2")."""
        return self._assign(self._transport.request(routes.signal_process(self.sandbox_id, self.id, signal)))

    def resize(self, cols: int, rows: int) -> Process:
        """Resize its terminal (processes started with `tty=True`)."""
        return self._assign(
            self._transport.request(routes.resize_process(self.sandbox_id, self.id, cols, rows))
        )

    def wait(self, timeout: float | None = None) -> Process:
        """Until it has ended (TimeoutError after `timeout` seconds); returns itself."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().ended:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"process {self.id} still runs after {timeout} s")
            time.sleep(POLL_SECONDS)
        return self


class Processes:
    """`sandbox.processes`: start, list and find background processes."""

    def __init__(self, transport: SyncTransport, sandbox_id: str) -> None:
        self._transport = transport
        self._sandbox_id = sandbox_id

    def start(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        tty: bool = False,
        cols: int | None = None,
        rows: int | None = None,
        timeout: float | None = None,
        stdin: bool = False,
    ) -> Process:
        """Start `command` (a string runs through `sh -c`) in the background."""
        options = start_options(
            env=env, workdir=workdir, tty=tty, cols=cols, rows=rows, timeout=timeout, stdin=stdin
        )
        info = self._transport.request(routes.start_process(self._sandbox_id, command, options))
        return Process.bind(self._transport, info)

    def list(self, status: str | None = None) -> list[Process]:
        """Running processes and the last 100 ended ones, newest first."""
        found = self._transport.request(routes.list_processes(self._sandbox_id, status))
        return [Process.bind(self._transport, info) for info in found]

    def get(self, process_id: str) -> Process:
        return Process.bind(
            self._transport, self._transport.request(routes.get_process(self._sandbox_id, process_id))
        )


class AsyncProcess(ProcessInfo):
    """A background process (async client): the same methods as `Process`, awaited."""

    _transport: AsyncTransport = PrivateAttr()

    @classmethod
    def bind(cls, transport: AsyncTransport, info: ProcessInfo) -> AsyncProcess:
        process = cls.model_validate(info.to_api())
        process._transport = transport
        return process

    def _assign(self, info: ProcessInfo) -> AsyncProcess:
        for name in type(info).model_fields:
            setattr(self, name, getattr(info, name))
        return self

    async def refresh(self) -> AsyncProcess:
        return self._assign(await self._transport.request(routes.get_process(self.sandbox_id, self.id)))

    async def output(self, since: int = 0, limit: int | None = None, encoding: str = "text") -> ProcessOutput:
        return await self._transport.request(
            routes.process_output(self.sandbox_id, self.id, since, limit, encoding)
        )

    def stream(self, since: int = 0, encoding: str = "text") -> AsyncIterator[OutputChunk]:
        return _async_streams.process_output(self._transport, self.sandbox_id, self.id, since, encoding)

    async def send_stdin(self, data: bytes | str, eof: bool = False) -> int:
        raw = data.encode() if isinstance(data, str) else data
        return await self._transport.request(routes.process_stdin(self.sandbox_id, self.id, raw, eof))

    async def signal(self, signal: str = "TERM") -> AsyncProcess:
        return self._assign(
            await self._transport.request(routes.signal_process(self.sandbox_id, self.id, signal))
        )

    async def resize(self, cols: int, rows: int) -> AsyncProcess:
        return self._assign(
            await self._transport.request(routes.resize_process(self.sandbox_id, self.id, cols, rows))
        )

    async def wait(self, timeout: float | None = None) -> AsyncProcess:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (await self.refresh()).ended:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"process {self.id} still runs after {timeout} s")
            await asyncio.sleep(POLL_SECONDS)
        return self


class AsyncProcesses:
    """`sandbox.processes` of the async client."""

    def __init__(self, transport: AsyncTransport, sandbox_id: str) -> None:
        self._transport = transport
        self._sandbox_id = sandbox_id

    async def start(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        tty: bool = False,
        cols: int | None = None,
        rows: int | None = None,
        timeout: float | None = None,
        stdin: bool = False,
    ) -> AsyncProcess:
        options = start_options(
            env=env, workdir=workdir, tty=tty, cols=cols, rows=rows, timeout=timeout, stdin=stdin
        )
        info = await self._transport.request(routes.start_process(self._sandbox_id, command, options))
        return AsyncProcess.bind(self._transport, info)

    async def list(self, status: str | None = None) -> list[AsyncProcess]:
        found = await self._transport.request(routes.list_processes(self._sandbox_id, status))
        return [AsyncProcess.bind(self._transport, info) for info in found]

    async def get(self, process_id: str) -> AsyncProcess:
        info = await self._transport.request(routes.get_process(self._sandbox_id, process_id))
        return AsyncProcess.bind(self._transport, info)
