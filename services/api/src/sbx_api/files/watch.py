"""`/ws/sandboxes/{id}/files/watch?token=&path=&recursive=`: changes under a directory of a
running sandbox, as the agent's inotify watch sees them, bridged from the orchestrator over NATS.

The API subscribes to the watch's output subject, asks the orchestrator to open it
(`sbx.rpc.fswatch.open`), sends `{type: "ready", path}` once the watch is in place (`path`
resolved inside the sandbox), then relays each change as a text frame `{type: "created" |
"modified" | "deleted" | "moved", path, isDir, timestamp}` (`moved` adds `fromPath`), plus
`{type: "overflow", timestamp}` when changes were dropped because they came faster than they
could be passed on (list the directory again). Keepalives, the bound on frames waiting for a
slow client and the `close` control when the client leaves are the relayed session's
(`streams/relayed.py`).

Close codes: 1008 for a missing or relative `path`, a malformed `recursive`, or a path that is
not a directory (reason starting `NOT_A_DIRECTORY`); 4004 for an unknown sandbox or directory;
4009 when the sandbox is not running at connect, or stops or pauses meanwhile (open the watch
again once it runs); 1000 when the watched directory is deleted; 1012 when the orchestrator
restarts and 1011 when it stops answering or the agent cannot be reached (open it again);
1013 when the client reads too slowly; 4029 over the per-user cap of streams.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

from fastapi import APIRouter
from nats.aio.msg import Msg
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import ErrorCode, WsClose
from sbx_common.messages import FileWatchControl, FileWatchFrame, FileWatchOpenReply, FileWatchOpenRequest
from sbx_common.status import Status
from starlette.websockets import WebSocket

from sbx_api.deps import State
from sbx_api.state import AppState
from sbx_api.streams import socket
from sbx_api.streams.relayed import Handler, OpenReply, RelayedSession
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

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


class WatchBridge(RelayedSession):
    unavailable = "The file watch service is unavailable."

    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        owner_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        *,
        path: str,
        recursive: bool,
    ) -> None:
        super().__init__(websocket, state, owner_id, sandbox_id, max_queued=MAX_QUEUED)
        self.path, self.recursive = path, recursive

    def handlers(self) -> list[tuple[str, Handler]]:
        return [(subjects.fswatch_output(self.session_id), self._on_frame)]

    def open_request(self) -> tuple[str, bytes]:
        request = FileWatchOpenRequest(
            watch_id=self.session_id,
            sandbox_id=self.sandbox_id,
            owner_id=self.owner_id,
            path=self.path,
            recursive=self.recursive,
        )
        return subjects.RPC_FSWATCH_OPEN, request.to_bytes()

    def parse_reply(self, data: bytes) -> FileWatchOpenReply:
        return FileWatchOpenReply.model_validate_json(data)

    def refusal(self, reply: OpenReply) -> CloseSocket:
        code = _OPEN_ERRORS.get(reply.error_code or "", WsClose.INTERNAL_ERROR)
        message = reply.error_message or "The watch could not be opened."
        if reply.error_code == "NOT_A_DIRECTORY":
            message = f"NOT_A_DIRECTORY: {message}"
        self.remote_ended = True
        return CloseSocket(code, message[:120])

    async def ready(self, reply: OpenReply) -> None:
        # Changes made from now on are reported: a client may start changing things.
        path = reply.path if isinstance(reply, FileWatchOpenReply) else self.path
        await self.websocket.send_text(json.dumps({"type": "ready", "path": path}))

    def control_subject(self) -> str:
        return subjects.fswatch_control(self.session_id)

    def keepalive(self) -> bytes:
        return FileWatchControl(type="keepalive").to_bytes()

    def close_control(self) -> bytes:
        return FileWatchControl(type="close").to_bytes()

    async def on_orchestrator_lost(self) -> None:
        self.finish(WsClose.INTERNAL_ERROR, _LOST)

    def not_running(self, status: str) -> str:
        return f"The sandbox is {status}; open the watch again once it runs."

    async def on_client_frame(self, message: Mapping[str, Any]) -> None:
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
            self.remote_ended = True
            self.finish(*_END_CLOSE.get(frame.reason or "", _ENDED))
            return
        self.enqueue(client_frame(frame), 1)


async def serve_watch(websocket: WebSocket, state: AppState, raw_sandbox_id: str) -> None:
    async def session() -> None:
        caller = await socket.caller_of(websocket, state)
        sandbox_id, status = await socket.owned_sandbox(state, caller, raw_sandbox_id)
        path = websocket.query_params.get("path") or ""
        if not path.startswith("/") or len(path) > 4096 or "\x00" in path:
            raise CloseSocket(WsClose.POLICY, "path must be an absolute path inside the sandbox.")
        recursive = socket.bool_param(websocket, "recursive")
        if status != Status.RUNNING.value:
            raise CloseSocket(WsClose.NOT_RUNNING, f"The sandbox is {status}.")
        async with socket.holding_socket(
            state.usage, Held.STREAMS, caller.user_id, state.settings.max_streams_per_user
        ):
            await WatchBridge(
                websocket, state, caller.user_id, sandbox_id, path=path, recursive=recursive
            ).run()

    await socket.serve(websocket, session)


router = APIRouter(tags=["files"])


@router.websocket("/ws/sandboxes/{sandbox_id}/files/watch")
async def watch_socket(websocket: WebSocket, sandbox_id: str, state: State) -> None:
    await serve_watch(websocket, state, sandbox_id)
