"""`/ws/sandboxes/{id}/terminal?token=&cols=&rows=&mode=`: a PTY shell, bridged to the
orchestrator over NATS.

The API never touches Docker. It subscribes to the session's output and control subjects,
asks the orchestrator to open the shell (`sbx.rpc.terminal.open`), sends `{"type": "ready"}`,
then relays: the client's binary or text frames -> `sbx.term.<session>.in` (as they come);
`{"type": "resize", cols, rows}` -> a `resize` control; `{"type": "ping"}` -> `{"type": "pong"}`;
the PTY's output -> binary frames. `mode=line` is for clients that send each typed line as a
text frame without its newline (wscat): such a frame gets a `\r` (Enter) appended; binary
frames and the default `mode=raw` are passed byte for byte.

A keepalive control every SBX_TERMINAL_KEEPALIVE_SECONDS tells the orchestrator the client is
still there; it is sent as a request, and once the orchestrator has answered one, KEEPALIVE_MISSES
intervals without an answer mean the orchestrator is gone (an orchestrator too old to answer is
never taken for gone). A `close` control ends the shell when the client leaves.

Close codes: 1000 when the shell exits (or the orchestrator closed an idle session), 4009 when
the sandbox is not running at connect or stops meanwhile, 4004 / 4001 as for every socket,
1008 for a malformed `cols`, `rows` or `mode`, 1013 when the client reads too slowly, 1011 when
the orchestrator cannot be reached or stops answering (4009 if the sandbox is not running by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, TypeGuard, get_args

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import ErrorCode, TerminalEndReason, WsClose
from sbx_common.messages import TerminalControl, TerminalOpenReply, TerminalOpenRequest
from sbx_common.status import Status
from starlette.websockets import WebSocket

from sbx_api.hosts import routing
from sbx_api.state import AppState
from sbx_api.streams import repository, socket
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

MAX_SIZE = 1000
MODES = ("raw", "line")
KEEPALIVE_MISSES = 3  # keepalive intervals without an answer before the orchestrator is gone
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


class TerminalBridge:
    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        owner_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        line_mode: bool = False,
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.owner_id = owner_id
        self.sandbox_id = sandbox_id
        self.session_id = uuid.uuid4().hex
        self.line_mode = line_mode
        self.max_buffered = state.settings.ws_terminal_buffer_bytes
        self._output: deque[bytes] = deque()
        self._buffered = 0
        self._wakeup = asyncio.Event()
        self._end: CloseSocket | None = None
        self._ended = asyncio.Event()
        self._shell_ended = False  # the orchestrator said the session is over

    def _finish(self, code: int, reason: str) -> None:
        if self._end is None:
            self._end = CloseSocket(code, reason)
        self._ended.set()

    async def run(self, cols: int, rows: int) -> None:
        nc = self.state.nc
        subscriptions: list[Subscription] = []
        requested = False
        try:
            try:
                for subject, callback in (
                    (subjects.terminal_output(self.session_id), self._on_output),
                    (subjects.terminal_control(self.session_id), self._on_control),
                    (subjects.events_of_sandbox(self.owner_id, self.sandbox_id), self._on_event),
                ):
                    subscriptions.append(await nc.subscribe(subject, cb=callback))
                await nc.flush(timeout=5)
                request = TerminalOpenRequest(
                    session_id=self.session_id,
                    sandbox_id=self.sandbox_id,
                    owner_id=self.owner_id,
                    cols=cols,
                    rows=rows,
                )
                requested = True
                response = await nc.request(
                    await routing.rpc_subject(self.state, self.sandbox_id, subjects.RPC_TERMINAL_OPEN),
                    request.to_bytes(),
                    timeout=self.state.settings.terminal_open_timeout_seconds,
                )
                reply = TerminalOpenReply.model_validate_json(response.data)
            except (nats.errors.Error, TimeoutError, ValidationError) as exc:
                raise CloseSocket(WsClose.INTERNAL_ERROR, "The terminal service is unavailable.") from exc
            if not reply.ok:
                code = _OPEN_ERRORS.get(reply.error_code or "", WsClose.INTERNAL_ERROR)
                raise CloseSocket(code, reply.error_message or "The terminal could not be opened.")
            await self.websocket.send_text('{"type":"ready"}')
            await self._relay()
        finally:
            if requested and not self._shell_ended:
                # Also when the reply was lost: a shell opened for nobody ends at once.
                await self._control(TerminalControl(type="close", sender="api"))
            for subscription in subscriptions:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def _relay(self) -> None:
        tasks = (
            asyncio.create_task(self._send_output()),
            asyncio.create_task(socket.until_disconnected(self.websocket, self._on_client_frame)),
            asyncio.create_task(self._keepalive()),
            asyncio.create_task(self._ended.wait()),
        )
        for task in await socket.until_first(*tasks):
            task.result()  # a failure in a relay task surfaces here
        if self._end is not None:
            await self._flush_output()
            raise self._end

    async def _send_output(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush_output()

    async def _flush_output(self) -> None:
        while self._output:
            data = self._output.popleft()
            self._buffered -= len(data)
            await self.websocket.send_bytes(data)

    async def _keepalive(self) -> None:
        interval = self.state.settings.terminal_keepalive_seconds
        keepalive = TerminalControl(type="keepalive", sender="api").to_bytes()
        subject = subjects.terminal_control(self.session_id)
        answered_at: float | None = None
        while True:
            sent_at = time.monotonic()
            try:
                await self.state.nc.request(subject, keepalive, timeout=interval)
                answered_at = time.monotonic()
            except (nats.errors.Error, TimeoutError):
                if answered_at is not None and time.monotonic() - answered_at >= KEEPALIVE_MISSES * interval:
                    await self._orchestrator_lost()
                    return
            await asyncio.sleep(max(interval - (time.monotonic() - sent_at), 0))

    async def _orchestrator_lost(self) -> None:
        """The orchestrator stopped answering: it died, or lost NATS. Its sandbox may be gone too."""
        try:
            async with self.state.pool.acquire() as conn:
                status = await repository.sandbox_status(conn, self.sandbox_id, self.owner_id)
        except socket.DATABASE_ERRORS:
            status = None  # the orchestrator is gone either way
        if status is not None and status != Status.RUNNING.value:
            self._finish(WsClose.NOT_RUNNING, f"The sandbox is {status}.")
        else:
            self._finish(WsClose.INTERNAL_ERROR, "The terminal service stopped answering.")

    async def _control(self, control: TerminalControl) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.state.nc.publish(subjects.terminal_control(self.session_id), control.to_bytes())

    async def _on_client_frame(self, message: Mapping[str, Any]) -> None:
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
                await self._control(TerminalControl(type="resize", sender="api", cols=cols, rows=rows))
            return True
        return False

    async def _on_output(self, msg: Msg) -> None:
        if self._buffered + len(msg.data) > self.max_buffered:
            self._finish(WsClose.TRY_AGAIN_LATER, "The client reads too slowly.")
            return
        self._buffered += len(msg.data)
        self._output.append(msg.data)
        self._wakeup.set()

    async def _on_control(self, msg: Msg) -> None:
        try:
            control = TerminalControl.model_validate_json(msg.data)
        except ValidationError:
            return
        if control.sender == "orchestrator" and control.type == "exit":
            self._shell_ended = True
            self._finish(*_exit_close(control.reason))

    async def _on_event(self, msg: Msg) -> None:
        status = msg.subject.rsplit(".", 1)[-1]
        if status != Status.RUNNING.value:
            self._finish(WsClose.NOT_RUNNING, f"The sandbox is {status}.")


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
            bridge = TerminalBridge(websocket, state, caller.user_id, sandbox_id, line_mode=mode == "line")
            await bridge.run(cols, rows)

    await socket.serve(websocket, session)
