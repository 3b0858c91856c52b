"""One sandbox's agent session: a persistent `docker exec` of `/.sbx/sbx-agent attach` with its
stdin and stdout carrying frames, any number of requests in flight at once (by id), and events
the agent pushes handed to a callback.

The exec is made in a Docker worker thread (two API calls, once per session); from then on the
hijacked socket is read and written by the event loop directly, so a round trip costs no thread
hop and no Docker API call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable
from typing import Any

from sbx_orchestrator.agent.protocol import DOCKER_STDERR, FrameBuffer, ProtocolError, encode_frame
from sbx_orchestrator.engine.docker_engine import DockerEngine

logger = logging.getLogger(__name__)

AGENT_DIR = "/.sbx"
AGENT_PATH = f"{AGENT_DIR}/sbx-agent"
_DOCKER_HEADER = 8

EventHandler = Callable[["AgentSession", dict[str, Any], bytes], None]


class AgentGone(Exception):
    """The session ended (container stopped or paused, agent gone, orchestrator closing it)."""


class AgentError(Exception):
    """The agent refused or failed an operation: `code` is a contract or RPC error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AgentSession:
    def __init__(self, container_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.container_id = container_id
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._drain_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._handles: list[Any] = []
        self.on_event: EventHandler | None = None
        self.daemon_pid = 0  # the agent daemon's PID inside the sandbox (from `hello`)
        self.on_close: list[Callable[[AgentSession], None]] = []

    @classmethod
    async def open(cls, engine: DockerEngine, container_id: str, hello_within: float) -> AgentSession:
        """Start the persistent exec (as the container's configured user) and say hello."""

        def attach() -> tuple[Any, socket.socket]:
            api = engine.api
            created = api.exec_create(
                container_id, [AGENT_PATH, "attach"], stdin=True, stdout=True, stderr=True, tty=False
            )
            holder = api.exec_start(created["Id"], socket=True)
            raw: socket.socket = holder._sock if hasattr(holder, "_sock") else holder  # type: ignore[assignment]
            # A descriptor of our own for the event loop; the SDK's objects keep theirs.
            return holder, raw.dup()

        holder, raw = await engine.call("agent_attach", attach)
        try:
            raw.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=raw, limit=1 << 22)
        except BaseException:
            raw.close()
            holder.close()
            raise
        session = cls(container_id, reader, writer)
        session._handles += [holder, getattr(holder, "_sock", holder)]
        session._task = asyncio.create_task(session._read_loop(), name=f"agent-{container_id[:12]}")
        try:
            hello, _ = await asyncio.wait_for(session.request("hello", {}), hello_within)
            session.daemon_pid = int(hello.get("pid") or 0)
        except BaseException:
            await session.close()
            raise
        return session

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def request(
        self, op: str, args: dict[str, Any], payload: bytes = b"", reply_within: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its reply; AgentError when the agent refused it."""
        if self.closed:
            raise AgentGone("the agent session is closed")
        request_id = next(self._ids)
        future: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(encode_frame({**args, "id": request_id, "op": op}, payload))
            async with self._drain_lock:
                await self._writer.drain()
            header, body = await asyncio.wait_for(future, reply_within) if reply_within else await future
        except (ConnectionError, OSError) as exc:
            await self.close()
            raise AgentGone(str(exc)) from exc
        finally:
            self._pending.pop(request_id, None)
        error = header.get("error")
        if isinstance(error, dict):
            raise AgentError(str(error.get("code") or "INTERNAL_ERROR"), str(error.get("message") or ""))
        return header, body

    async def _read_loop(self) -> None:
        frames = FrameBuffer()
        try:
            while True:
                prefix = await self._reader.readexactly(_DOCKER_HEADER)
                size = int.from_bytes(prefix[4:8], "big")
                data = await self._reader.readexactly(size) if size else b""
                if prefix[0] == DOCKER_STDERR:
                    logger.warning(
                        "agent said",
                        extra={
                            "container": self.container_id[:12],
                            "text": data[:500].decode(errors="replace"),
                        },
                    )
                    continue
                for header, body in frames.feed(data):
                    self._dispatch(header, body)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except ProtocolError as exc:
            logger.warning(
                "agent session broke", extra={"container": self.container_id[:12], "error": str(exc)}
            )
        finally:
            self._finish()

    def _dispatch(self, header: dict[str, Any], body: bytes) -> None:
        request_id = header.get("id")
        if request_id:
            future = self._pending.get(int(request_id))
            if future is not None and not future.done():
                future.set_result((header, body))
        elif self.on_event is not None:
            try:
                self.on_event(self, header, body)
            except Exception:
                logger.exception("agent event handler failed")

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AgentGone("the agent session ended"))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()
        for handle in self._handles:
            with contextlib.suppress(Exception):
                handle.close()
        for callback in self.on_close:
            try:
                callback(self)
            except Exception:
                logger.exception("agent session close callback failed")

    async def close(self) -> None:
        """End the session: the exec's stdin closes, so `attach` ends; the daemon stays."""
        task = self._task
        self._finish()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_closed(self) -> None:
        await self._closed.wait()
