"""`/ws/sandboxes/{id}/processes/{pid}`: a process's output from `since` on, then live, then its
exit; stdin, signals and resizes from the client. Each output frame is `{type: "output", seq,
stream, text, timestamp}`, or with `?encoding=base64` the exact bytes in `data` instead of `text`.

Order of work, as for the logs socket: subscribe to the live feed (`sbx.proc.<sandbox>.<pid>`,
core NATS) first, then read the stored output after `since` from PostgreSQL a page at a time. The
orchestrator stores a chunk before it publishes it, so every chunk is either read from the store
or arrives live; chunks are sent in seq order, once each (a live chunk already sent is skipped, a
live chunk past a gap has the gap read from the store first). A quiet feed is compared with the
store every CATCH_UP_SECONDS, so a chunk whose publish failed still arrives. When the process has
ended and everything up to its last stored seq was sent: `{"type": "exit", ...}`, then 1000.

Client frames: binary frames, and text frames that are not a control object, are written to the
process's stdin; `{"type": "signal", "signal": "INT"}` and `{"type": "resize", "cols", "rows"}`
are control.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import WsClose
from sbx_common.errors import PlatformError
from sbx_common.messages import ProcessOutput
from starlette.websockets import WebSocket

from sbx_api.deps import Caller
from sbx_api.processes import repository, service
from sbx_api.processes.schemas import ResizeRequest, SignalRequest
from sbx_api.state import AppState
from sbx_api.streams import socket
from sbx_api.streams.socket import CloseSocket
from sbx_api.usage import Held

CATCH_UP_SECONDS = 2.0
STORE_PAGE = 1000
ENCODINGS = ("text", "base64")
LIVE_BUFFER = 10_000  # live messages queued for one socket before it falls back to the store


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class ProcessFeed:
    def __init__(
        self,
        websocket: WebSocket,
        state: AppState,
        caller: Caller,
        sandbox_id: uuid.UUID,
        process_id: uuid.UUID,
        *,
        encoding: str = "text",
    ) -> None:
        self.websocket = websocket
        self.encoding = encoding
        self.state = state
        self.caller = caller
        self.sandbox_id = sandbox_id
        self.process_id = process_id
        self.sent = 0
        self._live: asyncio.Queue[ProcessOutput] = asyncio.Queue(LIVE_BUFFER)

    async def _on_message(self, msg: Msg) -> None:
        try:
            message = ProcessOutput.model_validate_json(msg.data)
        except ValidationError:
            return
        with contextlib.suppress(asyncio.QueueFull):  # the store has it: caught up from there
            self._live.put_nowait(message)

    async def run(self, since: int) -> None:
        self.sent = since
        subscription: Subscription | None = None
        try:
            try:
                subscription = await self.state.nc.subscribe(
                    subjects.process_output(self.sandbox_id, self.process_id), cb=self._on_message
                )
                await self.state.nc.flush(timeout=5)
            except (nats.errors.Error, TimeoutError) as exc:
                raise CloseSocket(WsClose.INTERNAL_ERROR, "The output stream is unavailable.") from exc
            sender = asyncio.create_task(self._send_output())
            reader = asyncio.create_task(socket.until_disconnected(self.websocket, self._on_client))
            done = await socket.until_first(sender, reader)
            if sender in done:
                sender.result()
        finally:
            if subscription is not None:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.unsubscribe()

    async def _catch_up(self) -> repository.ProcessRow:
        """Send what the store holds after the last seq sent; the process's row read before it."""
        while True:
            async with socket.database(self.state, "The output store is unavailable.") as conn:
                row = await repository.get_process(
                    conn, self.sandbox_id, self.caller.user_id, self.process_id
                )
                if row is None:
                    raise CloseSocket(WsClose.NOT_FOUND, "No such process.")
                chunks = await repository.output(conn, self.process_id, self.sent, STORE_PAGE)
            for chunk in chunks:
                await self._send_chunk(chunk.seq, chunk.stream, chunk.data, chunk.ts)
            if len(chunks) < STORE_PAGE:
                return row

    async def _send_chunk(self, seq: int, stream: str, data: bytes, timestamp: datetime | None) -> None:
        if seq <= self.sent:
            return
        frame: dict[str, Any] = {"type": "output", "seq": seq, "stream": stream}
        if self.encoding == "base64":
            frame["data"] = base64.b64encode(data).decode()
        else:
            frame["text"] = data.decode("utf-8", errors="replace")
        frame["timestamp"] = timestamp.isoformat().replace("+00:00", "Z") if timestamp else None
        await self.websocket.send_text(_dumps(frame))
        self.sent = seq

    async def _finish(self, row: repository.ProcessRow) -> None:
        frame = {"type": "exit", "status": row.status, "exitCode": row.exit_code, "signal": row.signal}
        await self.websocket.send_text(_dumps(frame))
        raise CloseSocket(WsClose.NORMAL, f"The process has {row.status}.")

    async def _send_output(self) -> None:
        row = await self._catch_up()
        while True:
            if row.status != "running" and self.sent >= row.last_seq:
                await self._finish(row)
            try:
                message = await asyncio.wait_for(self._live.get(), CATCH_UP_SECONDS)
            except TimeoutError:
                row = await self._catch_up()
                continue
            if message.kind == "output" and message.seq == self.sent + 1 and message.stream:
                data = base64.b64decode(message.data)
                await self._send_chunk(message.seq, message.stream, data, message.timestamp)
            elif message.kind == "output" and message.seq <= self.sent:
                continue
            else:  # a gap, or the end: the store has everything before it
                row = await self._catch_up()

    async def _on_client(self, message: Mapping[str, Any]) -> None:
        text, data = message.get("text"), message.get("bytes")
        if text is not None:
            control = _control(text)
            if control is not None:
                await self._control(control)
                return
            data = text.encode()
        if data:
            await self._call(service.write_stdin, data=data, eof=False)

    async def _control(self, control: dict[str, Any]) -> None:
        try:
            if control["type"] == "signal":
                body = SignalRequest.model_validate({"signal": control.get("signal")})
                await self._call(service.signal, body.signal)
            else:
                size = ResizeRequest.model_validate(
                    {"cols": control.get("cols"), "rows": control.get("rows")}
                )
                await self._call(service.resize, cols=size.cols, rows=size.rows)
        except ValidationError:
            await self.websocket.send_text(_dumps({"type": "error", "code": "VALIDATION_ERROR"}))

    async def _call(self, action: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await action(self.state, self.caller, self.sandbox_id, self.process_id, *args, **kwargs)
        except PlatformError as exc:
            await self.websocket.send_text(
                _dumps({"type": "error", "code": str(exc.code), "message": exc.message})
            )


def _control(text: str) -> dict[str, Any] | None:
    """A control object (`signal`, `resize`), or None for stdin text."""
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and value.get("type") in ("signal", "resize"):
        return value
    return None


async def serve_process(
    websocket: WebSocket, state: AppState, raw_sandbox_id: str, raw_process_id: str
) -> None:
    async def session() -> None:
        caller = await socket.caller_of(websocket, state)
        sandbox_id, _status = await socket.owned_sandbox(state, caller, raw_sandbox_id)
        try:
            process_id = uuid.UUID(raw_process_id)
        except ValueError:
            raise CloseSocket(WsClose.NOT_FOUND, "No such process.") from None
        since = socket.int_param(websocket, "since", 0, 0, 2**62)
        encoding = websocket.query_params.get("encoding") or "text"
        if encoding not in ENCODINGS:
            raise CloseSocket(WsClose.POLICY, "encoding must be text or base64.")
        async with socket.holding_socket(
            state.usage, Held.STREAMS, caller.user_id, state.settings.max_streams_per_user
        ):
            await ProcessFeed(websocket, state, caller, sandbox_id, process_id, encoding=encoding).run(since)

    await socket.serve(websocket, session)
