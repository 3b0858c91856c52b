"""`/ws/sandboxes/{id}/terminal?token=&cols=&rows=&mode=`: a PTY shell, bridged to the
orchestrator over NATS.

The API never touches Docker. It subscribes to the session's output and control subjects,
asks the orchestrator to open the shell (`sbx.rpc.terminal.open`), sends `{"type": "ready"}`,
then relays: the client's binary or text frames -> `sbx.term.<session>.in` (as they come);
`{"type": "resize", cols, rows}` -> a `resize` control; `{"type": "ping"}` -> `{"type": "pong"}`;
the PTY's output -> binary frames. `mode=line` is for clients that send each typed line as a
text frame without its newline (wscat): such a frame gets a `\r` (Enter) appended; binary
frames and the default `mode=raw` are passed byte for byte.

Keepalives, the bound on output waiting for a slow client (SBX_WS_TERMINAL_BUFFER_BYTES) and the
`close` control when the client leaves are the relayed session's (`streams/relayed.py`).

Close codes: 1000 when the shell exits (or the orchestrator closed an idle session), 4009 when
the sandbox is not running at connect or stops meanwhile, 4004 / 4001 as for every socket,
1008 for a malformed `cols`, `rows` or `mode`, 1013 when the client reads too slowly, 1011 when
the orchestrator cannot be reached or stops answering (4009 if the sandbox is not running by then).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final, TypeGuard, get_args

import nats.errors
from nats.aio.msg import Msg
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import ErrorCode, TerminalEndReason, WsClose
from sbx_common.messages import TerminalControl, TerminalOpenReply, TerminalOpenRequest
from sbx_common.status import Status
from starlette.websockets import WebSocket

from sbx_api.state import AppState
from sbx_api.streams import repository, socket
from sbx_api.streams.relayed import Handler, OpenReply, RelayedSession
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

MAX_SIZE = 1000
MODES = ("raw", "line")
# The orchestrator's refusals to open a shell, as close codes (any other is 1011).
_OPEN_ERRORS: Final[dict[str, int]] = {
    ErrorCode.NOT_FOUND: WsClose.NOT_FOUND,
    ErrorCode.NOT_RUNNING: WsClose.NOT_RUNNING,
}
# Why the orchestrator ended the session, as the close code and reason the client gets.
_EXIT_CLOSE: Final[dict[TerminalEndReason, tuple[int, str]]] = {
    "exited": (WsClose.NORMAL, "The shell exited."),
    "idle": (WsClose.NORMAL, "The terminal was idle for too long."),
    "stopped": (WsClose.NOT_RUNNING, "The sandbox stopped."),
}
_ENDED = (WsClose.INTERNAL_ERROR, "The terminal ended.")
_END_REASONS: Final = frozenset(get_args(TerminalEndReason))


def _is_end_reason(reason: str | None) -> TypeGuard[TerminalEndReason]:
    return reason in _END_REASONS


def _exit_close(reason: str | None) -> tuple[int, str]:
    """The close code and reason for the orchestrator's `exit` with this reason."""
    return _EXIT_CLOSE.get(reason, _ENDED) if _is_end_reason(reason) else _ENDED


class TerminalBridge(RelayedSession):
    unavailable = "The terminal service is unavailable."

    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        owner_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        *,
        line_mode: bool = False,
        cols: int = 80,
        rows: int = 24,
    ) -> None:
        super().__init__(
            websocket, state, owner_id, sandbox_id, max_queued=state.settings.ws_terminal_buffer_bytes
        )
        self.line_mode = line_mode
        self.cols, self.rows = cols, rows

    def handlers(self) -> list[tuple[str, Handler]]:
        return [
            (subjects.terminal_output(self.session_id), self._on_output),
            (subjects.terminal_control(self.session_id), self._on_control),
        ]

    def open_request(self) -> tuple[str, bytes]:
        request = TerminalOpenRequest(
            session_id=self.session_id,
            sandbox_id=self.sandbox_id,
            owner_id=self.owner_id,
            cols=self.cols,
            rows=self.rows,
        )
        return subjects.RPC_TERMINAL_OPEN, request.to_bytes()

    def parse_reply(self, data: bytes) -> TerminalOpenReply:
        return TerminalOpenReply.model_validate_json(data)

    def refusal(self, reply: OpenReply) -> CloseSocket:
        code = _OPEN_ERRORS.get(reply.error_code or "", WsClose.INTERNAL_ERROR)
        return CloseSocket(code, reply.error_message or "The terminal could not be opened.")

    async def ready(self, reply: OpenReply) -> None:
        await self.websocket.send_text('{"type":"ready"}')

    def control_subject(self) -> str:
        return subjects.terminal_control(self.session_id)

    def keepalive(self) -> bytes:
        return TerminalControl(type="keepalive", sender="api").to_bytes()

    def close_control(self) -> bytes:
        return TerminalControl(type="close", sender="api").to_bytes()

    async def on_orchestrator_lost(self) -> None:
        """The orchestrator stopped answering: it died, or lost NATS. Its sandbox may be gone too."""
        try:
            async with self.state.pool.acquire() as conn:
                status = await repository.sandbox_status(conn, self.sandbox_id, self.owner_id)
        except socket.DATABASE_ERRORS:
            status = None  # the orchestrator is gone either way
        if status is not None and status != Status.RUNNING.value:
            self.finish(WsClose.NOT_RUNNING, f"The sandbox is {status}.")
        else:
            self.finish(WsClose.INTERNAL_ERROR, "The terminal service stopped answering.")

    async def on_client_frame(self, message: Mapping[str, Any]) -> None:
        data = message.get("bytes")
        text = message.get("text")
        if isinstance(text, str):
            if await self._handled_as_command(text):
                return
            data = (text + "\r" if self.line_mode else text).encode()
        if isinstance(data, bytes) and data:
            with contextlib.suppress(nats.errors.Error):
                await self.state.nc.publish(subjects.terminal_input(self.session_id), data)

    async def _handled_as_command(self, text: str) -> bool:
        """`{"type": "resize" | "ping", ...}` text frames are commands; anything else is typed."""
        if not text.startswith("{"):
            return False
        try:
            command = json.loads(text)
        except ValueError:
            return False
        if not isinstance(command, dict):
            return False
        if command.get("type") == "ping":
            await self.websocket.send_text('{"type":"pong"}')
            return True
        if command.get("type") == "resize":
            cols, rows = command.get("cols"), command.get("rows")
            if (
                isinstance(cols, int)
                and isinstance(rows, int)
                and 0 < cols <= MAX_SIZE
                and 0 < rows <= MAX_SIZE
            ):
                control = TerminalControl(type="resize", sender="api", cols=cols, rows=rows)
                await self.publish_control(control.to_bytes())
            return True
        return False

    async def _on_output(self, msg: Msg) -> None:
        self.enqueue(msg.data, len(msg.data))

    async def _on_control(self, msg: Msg) -> None:
        try:
            control = TerminalControl.model_validate_json(msg.data)
        except ValidationError:
            return
        if control.sender == "orchestrator" and control.type == "exit":
            self.remote_ended = True
            self.finish(*_exit_close(control.reason))


async def serve_terminal(websocket: WebSocket, state: AppState, raw_sandbox_id: str) -> None:
    async def session() -> None:
        caller = await socket.caller_of(websocket, state)
        sandbox_id, status = await socket.owned_sandbox(state, caller, raw_sandbox_id)
        cols = socket.int_param(websocket, "cols", 80, 1, MAX_SIZE)
        rows = socket.int_param(websocket, "rows", 24, 1, MAX_SIZE)
        mode = websocket.query_params.get("mode") or "raw"
        if mode not in MODES:
            raise CloseSocket(WsClose.POLICY, "mode must be raw or line.")
        if status != Status.RUNNING.value:
            raise CloseSocket(WsClose.NOT_RUNNING, f"The sandbox is {status}.")
        async with socket.holding_socket(
            state.usage, Held.TERMINALS, caller.user_id, state.settings.max_terminals_per_user
        ):
            bridge = TerminalBridge(
                websocket, state, caller.user_id, sandbox_id, line_mode=mode == "line", cols=cols, rows=rows
            )
            await bridge.run()

    await socket.serve(websocket, session)
