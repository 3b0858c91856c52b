"""A WebSocket relayed to something the orchestrator holds open for it (a terminal's shell, a
file watch): what the terminal and the file watch sockets share.

`run()` subscribes to the session's subjects and to the sandbox's status events first (so
nothing the orchestrator sends after opening is missed), asks the orchestrator to open the
session (a NATS request), closes the socket as the subclass says when the reply is a refusal
(1011 when it is unreadable), else has it send its `ready` frame, then relays until one side ends:

- frames from NATS are queued by the subscription callbacks (bounded: past `max_queued`, the
  client reads too slowly, 1013) and sent by one task, in order;
- the client's frames go to `on_client_frame`;
- a keepalive request every SBX_TERMINAL_KEEPALIVE_SECONDS tells the orchestrator the client is
  still there; once one was answered, KEEPALIVE_MISSES intervals without an answer mean the
  orchestrator is gone (`on_orchestrator_lost`); an orchestrator that never answered one is never
  taken for gone;
- a status event other than `running` ends the socket with 4009.

Whatever ends it, the frames already queued are sent before the close, and the orchestrator is
told to close the session (also when its reply was lost: a session opened for nobody ends at
once) unless it ended the session itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import WsClose
from sbx_common.status import Status
from starlette.websockets import WebSocket

from sbx_api.hosts import routing
from sbx_api.state import AppState
from sbx_api.streams import socket
from sbx_api.streams.socket import CloseSocket

KEEPALIVE_MISSES = 3  # keepalive intervals without an answer before the orchestrator is gone

Handler = Callable[[Msg], Awaitable[None]]


class OpenReply(Protocol):
    """What every open reply says (read-only here: the replies narrow `error_code`)."""

    @property
    def ok(self) -> bool: ...

    @property
    def error_code(self) -> str | None: ...

    @property
    def error_message(self) -> str | None: ...


class RelayedSession(ABC):
    """One client's socket and the orchestrator's session behind it."""

    #: The close reason when the orchestrator cannot be asked (1011).
    unavailable = "The service is unavailable."

    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        owner_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        max_queued: int,
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.owner_id = owner_id
        self.sandbox_id = sandbox_id
        self.session_id = uuid.uuid4().hex
        self.max_queued = max_queued
        self._queue: deque[tuple[bytes | str, int]] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._end: CloseSocket | None = None
        self._ended = asyncio.Event()
        self.remote_ended = False  # the orchestrator said the session is over

    # What a kind of session says.

    @abstractmethod
    def handlers(self) -> list[tuple[str, Handler]]:
        """The session's own subjects and their callbacks (the status events are added)."""

    @abstractmethod
    def open_request(self) -> tuple[str, bytes]:
        """The request that opens the session: its name (`subjects.RPC_*`, sent to the sandbox's
        host) and body."""

    @abstractmethod
    def parse_reply(self, data: bytes) -> OpenReply:
        """The orchestrator's reply (raises pydantic's ValidationError when unreadable)."""

    @abstractmethod
    def refusal(self, reply: OpenReply) -> CloseSocket:
        """How a refusal closes the socket (set `remote_ended` when nothing was opened)."""

    @abstractmethod
    async def ready(self, reply: OpenReply) -> None:
        """The session is open: send the client its `ready` frame."""

    @abstractmethod
    def control_subject(self) -> str:
        """Where keepalives and the closing control go."""

    @abstractmethod
    def keepalive(self) -> bytes: ...

    @abstractmethod
    def close_control(self) -> bytes: ...

    @abstractmethod
    async def on_client_frame(self, message: Mapping[str, Any]) -> None: ...

    async def on_orchestrator_lost(self) -> None:
        self.finish(WsClose.INTERNAL_ERROR, "The service stopped answering; open it again.")

    def not_running(self, status: str) -> str:
        return f"The sandbox is {status}."

    # Shared.

    def finish(self, code: int, reason: str) -> None:
        """End the socket with this close (the first reason wins)."""
        if self._end is None:
            self._end = CloseSocket(code, reason)
        self._ended.set()

    def enqueue(self, frame: bytes | str, cost: int) -> None:
        """Queue a frame for the client (bytes as a binary frame, text as a text one)."""
        if self._queued + cost > self.max_queued:
            self.finish(WsClose.TRY_AGAIN_LATER, "The client reads too slowly.")
            return
        self._queued += cost
        self._queue.append((frame, cost))
        self._wakeup.set()

    async def publish_control(self, data: bytes) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.state.nc.publish(self.control_subject(), data)

    async def run(self) -> None:
        nc = self.state.nc
        subscriptions: list[Subscription] = []
        requested = False
        try:
            try:
                events = subjects.events_of_sandbox(self.owner_id, self.sandbox_id)
                for subject, callback in [*self.handlers(), (events, self._on_event)]:
                    subscriptions.append(await nc.subscribe(subject, cb=callback))
                await nc.flush(timeout=5)
                name, body = self.open_request()
                subject = await routing.rpc_subject(self.state, self.sandbox_id, name)
                requested = True
                response = await nc.request(
                    subject, body, timeout=self.state.settings.terminal_open_timeout_seconds
                )
            except (nats.errors.Error, TimeoutError) as exc:
                raise CloseSocket(WsClose.INTERNAL_ERROR, self.unavailable) from exc
            try:
                reply = self.parse_reply(response.data)
            except ValidationError as exc:
                raise CloseSocket(WsClose.INTERNAL_ERROR, self.unavailable) from exc
            if not reply.ok:
                raise self.refusal(reply)
            await self.ready(reply)
            await self._relay()
        finally:
            if requested and not self.remote_ended:
                await self.publish_control(self.close_control())
            for subscription in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def _relay(self) -> None:
        tasks = (
            asyncio.create_task(self._send_queued()),
            asyncio.create_task(socket.until_disconnected(self.websocket, self.on_client_frame)),
            asyncio.create_task(self._keepalive()),
            asyncio.create_task(self._ended.wait()),
        )
        for task in await socket.until_first(*tasks):
            task.result()  # a failure in a relay task surfaces here
        if self._end is not None:
            await self._flush()
            raise self._end

    async def _send_queued(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._queue:
            frame, cost = self._queue.popleft()
            self._queued -= cost
            if isinstance(frame, bytes):
                await self.websocket.send_bytes(frame)
            else:
                await self.websocket.send_text(frame)

    async def _keepalive(self) -> None:
        interval = self.state.settings.terminal_keepalive_seconds
        keepalive = self.keepalive()
        subject = self.control_subject()
        answered_at: float | None = None
        while True:
            sent_at = time.monotonic()
            try:
                await self.state.nc.request(subject, keepalive, timeout=interval)
                answered_at = time.monotonic()
            except (nats.errors.Error, TimeoutError):
                if answered_at is not None and time.monotonic() - answered_at >= KEEPALIVE_MISSES * interval:
                    await self.on_orchestrator_lost()
                    return
            await asyncio.sleep(max(interval - (time.monotonic() - sent_at), 0))

    async def _on_event(self, msg: Msg) -> None:
        status = msg.subject.rsplit(".", 1)[-1]
        if status != Status.RUNNING.value:
            self.finish(WsClose.NOT_RUNNING, self.not_running(status))
