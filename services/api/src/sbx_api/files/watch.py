"""`/ws/sandboxes/{id}/files/watch?token=&path=&recursive=`: changes under a directory of a
running sandbox, as the agent's inotify watch sees them, bridged from the orchestrator over NATS.

The API subscribes to the watch's output subject, asks the orchestrator to open it
(`sbx.rpc.fswatch.open`), sends `{type: "ready", path}` once the watch is in place (`path`
resolved inside the sandbox), then relays each change as a text frame `{type: "created" |
"modified" | "deleted" | "moved", path, isDir, timestamp}` (`moved` adds `fromPath`), plus
`{type: "overflow", timestamp}` when changes were dropped because they came faster than they
could be passed on (list the directory again). A keepalive request every
SBX_TERMINAL_KEEPALIVE_SECONDS tells the orchestrator the client is still there; KEEPALIVE_MISSES
intervals without an answer (once one came) mean the orchestrator is gone. A `close` control
ends the watch when the client leaves.

Close codes: 1008 for a missing or relative `path`, a malformed `recursive`, or a path that is
not a directory (reason starting `NOT_A_DIRECTORY`); 4004 for an unknown sandbox or directory;
4009 when the sandbox is not running at connect, or stops or pauses meanwhile (open the watch
again once it runs); 1000 when the watched directory is deleted; 1012 when the orchestrator
restarts and 1011 when it stops answering or the agent cannot be reached (open it again);
1013 when the client reads too slowly; 4029 over the per-user cap of streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import nats.errors
from fastapi import APIRouter
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import ErrorCode, WsClose
from sbx_common.messages import FileWatchControl, FileWatchFrame, FileWatchOpenReply, FileWatchOpenRequest
from sbx_common.status import Status
from starlette.websockets import WebSocket

from sbx_api.deps import State
from sbx_api.hosts import routing
from sbx_api.state import AppState
from sbx_api.streams import socket
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

KEEPALIVE_MISSES = 3
MAX_QUEUED = 10_000  # frames waiting for a slow client; past it: 1013
SERVICE_RESTART: Final = 1012
_OPEN_ERRORS: Final[dict[str, int]] = {
    ErrorCode.NOT_FOUND: WsClose.NOT_FOUND,
    ErrorCode.NOT_RUNNING: WsClose.NOT_RUNNING,
    "NOT_A_DIRECTORY": WsClose.POLICY,
    ErrorCode.VALIDATION_ERROR: WsClose.POLICY,
}
_END_CLOSE: Final[dict[str, tuple[int, str]]] = {
    "stopped": (WsClose.NOT_RUNNING, "The sandbox stopped or paused; open the watch again once it runs."),
    "deleted": (WsClose.NORMAL, "The watched directory was deleted."),
    "restart": (SERVICE_RESTART, "The file watch service restarted; open the watch again."),
    "closed": (WsClose.NORMAL, "The watch was closed."),
}
_ENDED = (WsClose.INTERNAL_ERROR, "The watch ended; open it again.")
_LOST = "The file watch service stopped answering; open the watch again."


def client_frame(frame: FileWatchFrame) -> str:
    """The contract's frame for one change."""
    out: dict[str, Any] = {"type": frame.type}
    if frame.type != "overflow":
        out["path"] = frame.path
        out["isDir"] = frame.is_dir
    if frame.from_path is not None:
        out["fromPath"] = frame.from_path
    out["timestamp"] = frame.timestamp.isoformat().replace("+00:00", "Z") if frame.timestamp else None
    return json.dumps(out)


class WatchBridge:
    def __init__(
        self, websocket: WebSocket, state: AppState, owner_id: uuid.UUID, sandbox_id: uuid.UUID
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.owner_id = owner_id
        self.sandbox_id = sandbox_id
        self.watch_id = uuid.uuid4().hex
        self._frames: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._end: CloseSocket | None = None
        self._ended = asyncio.Event()
        self._watch_ended = False

    def _finish(self, code: int, reason: str) -> None:
        if self._end is None:
            self._end = CloseSocket(code, reason)
        self._ended.set()

    async def run(self, path: str, recursive: bool) -> None:
        nc = self.state.nc
        subscriptions: list[Subscription] = []
        requested = False
        try:
            try:
                for subject, callback in (
                    (subjects.fswatch_output(self.watch_id), self._on_frame),
                    (subjects.events_of_sandbox(self.owner_id, self.sandbox_id), self._on_event),
                ):
                    subscriptions.append(await nc.subscribe(subject, cb=callback))
                await nc.flush(timeout=5)
                request = FileWatchOpenRequest(
                    watch_id=self.watch_id,
                    sandbox_id=self.sandbox_id,
                    owner_id=self.owner_id,
                    path=path,
                    recursive=recursive,
                )
                requested = True
                response = await nc.request(
                    await routing.rpc_subject(self.state, self.sandbox_id, subjects.RPC_FSWATCH_OPEN),
                    request.to_bytes(),
                    timeout=self.state.settings.terminal_open_timeout_seconds,
                )
                reply = FileWatchOpenReply.model_validate_json(response.data)
            except (nats.errors.Error, TimeoutError, ValidationError) as exc:
                raise CloseSocket(WsClose.INTERNAL_ERROR, "The file watch service is unavailable.") from exc
            if not reply.ok:
                code = _OPEN_ERRORS.get(reply.error_code or "", WsClose.INTERNAL_ERROR)
                message = reply.error_message or "The watch could not be opened."
                if reply.error_code == "NOT_A_DIRECTORY":
                    message = f"NOT_A_DIRECTORY: {message}"
                self._watch_ended = True
                raise CloseSocket(code, message[:120])
            # Changes made from now on are reported: a client may start changing things.
            await self.websocket.send_text(json.dumps({"type": "ready", "path": reply.path}))
            await self._relay()
        finally:
            if requested and not self._watch_ended:
                with contextlib.suppress(nats.errors.Error):
                    await nc.publish(
                        subjects.fswatch_control(self.watch_id), FileWatchControl(type="close").to_bytes()
                    )
            for subscription in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def _relay(self) -> None:
        tasks = (
            asyncio.create_task(self._send_frames()),
            asyncio.create_task(socket.until_disconnected(self.websocket, self._on_client_frame)),
            asyncio.create_task(self._keepalive()),
            asyncio.create_task(self._ended.wait()),
        )
        for task in await socket.until_first(*tasks):
            task.result()
        if self._end is not None:
            await self._flush()
            raise self._end

    async def _send_frames(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._frames:
            await self.websocket.send_text(self._frames.popleft())

    async def _keepalive(self) -> None:
        interval = self.state.settings.terminal_keepalive_seconds
        keepalive = FileWatchControl(type="keepalive").to_bytes()
        subject = subjects.fswatch_control(self.watch_id)
        answered_at: float | None = None
        while True:
            sent_at = time.monotonic()
            try:
                await self.state.nc.request(subject, keepalive, timeout=interval)
                answered_at = time.monotonic()
            except (nats.errors.Error, TimeoutError):
                if answered_at is not None and time.monotonic() - answered_at >= KEEPALIVE_MISSES * interval:
                    self._finish(
                        WsClose.INTERNAL_ERROR,
                        "The file watch service stopped answering; open the watch again.",
                    )
                    return
            await asyncio.sleep(max(interval - (time.monotonic() - sent_at), 0))

    async def _on_client_frame(self, message: Mapping[str, Any]) -> None:
        text = message.get("text")
        if isinstance(text, str) and text.startswith("{"):
            with contextlib.suppress(ValueError):
                if json.loads(text).get("type") == "ping":
                    await self.websocket.send_text('{"type":"pong"}')

    async def _on_frame(self, msg: Msg) -> None:
        try:
            frame = FileWatchFrame.model_validate_json(msg.data)
        except ValidationError:
            return
        if frame.type == "end":
            self._watch_ended = True
            self._finish(*_END_CLOSE.get(frame.reason or "", _ENDED))
            return
        if len(self._frames) >= MAX_QUEUED:
            self._finish(WsClose.TRY_AGAIN_LATER, "The client reads too slowly.")
            return
        self._frames.append(client_frame(frame))
        self._wakeup.set()

    async def _on_event(self, msg: Msg) -> None:
        status = msg.subject.rsplit(".", 1)[-1]
        if status != Status.RUNNING.value:
            self._finish(WsClose.NOT_RUNNING, f"The sandbox is {status}; open the watch again once it runs.")


def _recursive(websocket: WebSocket) -> bool:
    raw = (websocket.query_params.get("recursive") or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise CloseSocket(WsClose.POLICY, "recursive must be true or false.")
    return raw in ("true", "1")


async def serve_watch(websocket: WebSocket, state: AppState, raw_sandbox_id: str) -> None:
    async def session() -> None:
        caller = await socket.caller_of(websocket, state)
        sandbox_id, status = await socket.owned_sandbox(state, caller, raw_sandbox_id)
        path = websocket.query_params.get("path") or ""
        if not path.startswith("/") or len(path) > 4096 or "\x00" in path:
            raise CloseSocket(WsClose.POLICY, "path must be an absolute path inside the sandbox.")
        recursive = _recursive(websocket)
        if status != Status.RUNNING.value:
            raise CloseSocket(WsClose.NOT_RUNNING, f"The sandbox is {status}.")
        async with socket.holding_socket(
            state.usage, Held.STREAMS, caller.user_id, state.settings.max_streams_per_user
        ):
            await WatchBridge(websocket, state, caller.user_id, sandbox_id).run(path, recursive)

    await socket.serve(websocket, session)


router = APIRouter(tags=["files"])


@router.websocket("/ws/sandboxes/{sandbox_id}/files/watch")
async def watch_socket(websocket: WebSocket, sandbox_id: str, state: State) -> None:
    await serve_watch(websocket, state, sandbox_id)
