"""What the process routes do: checks, the orchestrator's requests (`sbx.rpc.process`), reads.

The orchestrator writes the process tables; here they are only read. A create is audited
(`sandbox.process.start`, without the command line, which may hold credentials)."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any, Final

import nats.errors
from pydantic import ValidationError
from sbx_common import subjects, telemetry
from sbx_common.codes import ErrorCode
from sbx_common.errors import (
    InvalidState,
    NotFound,
    NotRunning,
    PlatformError,
    QuotaExceeded,
    Unavailable,
    ValidationFailed,
)
from sbx_common.logging import trace_id_var
from sbx_common.messages import ProcessOp, ProcessReply, ProcessRequest
from sbx_common.status import Status

from sbx_api.deps import Caller
from sbx_api.hosts import routing
from sbx_api.processes import repository
from sbx_api.processes.repository import ProcessRow, StoredChunk
from sbx_api.processes.schemas import CreateProcessRequest
from sbx_api.sandboxes.service import audited, get
from sbx_api.state import AppState

logger = logging.getLogger(__name__)

RPC_TIMEOUT_SECONDS = 20.0
_ERRORS_BY_CODE: Final[dict[ErrorCode, type[PlatformError]]] = {
    ErrorCode.NOT_RUNNING: NotRunning,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.VALIDATION_ERROR: ValidationFailed,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.INVALID_STATE: InvalidState,
    ErrorCode.QUOTA_EXCEEDED: QuotaExceeded,
}


def _raise_for(reply: ProcessReply) -> None:
    if not reply.error_code:
        return
    try:
        error = _ERRORS_BY_CODE.get(ErrorCode(reply.error_code), Unavailable)
    except ValueError:
        error = Unavailable
    if error is Unavailable:
        raise Unavailable(reply.error_message)
    raise error(reply.error_message, reply.details or None)


async def ask(state: AppState, request: ProcessRequest) -> ProcessReply:
    """One request to the orchestrator; its error code raised as the API's error."""
    try:
        response = await state.nc.request(
            await routing.rpc_subject(state, request.sandbox_id, subjects.RPC_PROCESS),
            request.to_bytes(),
            timeout=RPC_TIMEOUT_SECONDS,
            headers=telemetry.inject_headers(),
        )
    except nats.errors.NoRespondersError:
        raise Unavailable("No orchestrator is available.") from None
    except (nats.errors.Error, TimeoutError):
        raise Unavailable("The orchestrator did not answer in time.") from None
    try:
        reply = ProcessReply.model_validate_json(response.data)
    except ValidationError:
        raise Unavailable("The orchestrator's answer was unreadable.") from None
    _raise_for(reply)
    return reply


def _request(
    caller: Caller, sandbox_id: uuid.UUID, process_id: uuid.UUID, op: ProcessOp, **fields: Any
) -> ProcessRequest:
    return ProcessRequest(
        op=op,
        sandbox_id=sandbox_id,
        owner_id=caller.user_id,
        process_id=process_id,
        trace_id=trace_id_var.get(),
        **fields,
    )


async def create(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, body: CreateProcessRequest
) -> ProcessRow:
    async with audited(state, caller, "sandbox.process.start", sandbox_id) as attempt:
        sandbox = await get(state, caller, sandbox_id)
        if sandbox.status != Status.RUNNING:
            raise NotRunning(f"The sandbox is {sandbox.status}; processes start only while it runs.")
        process_id = uuid.uuid4()
        await ask(
            state,
            _request(
                caller,
                sandbox_id,
                process_id,
                "create",
                command=body.argv(),
                env=body.env,
                workdir=body.workdir,
                tty=body.tty,
                cols=body.cols,
                rows=body.rows,
                timeout_seconds=body.timeout_seconds,
                stdin=body.stdin,
            ),
        )
        row = await get_process(state, caller, sandbox_id, process_id)
        await attempt.succeeded(state.pool, details={"processId": str(process_id), "tty": body.tty})
        return row


async def get_process(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, process_id: uuid.UUID
) -> ProcessRow:
    async with state.pool.acquire() as conn:
        row = await repository.get_process(conn, sandbox_id, caller.user_id, process_id)
    if row is None:
        raise NotFound("No such process.")
    return row


async def list_processes(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, status: str | None
) -> list[ProcessRow]:
    await get(state, caller, sandbox_id)
    async with state.pool.acquire() as conn:
        return await repository.list_processes(conn, sandbox_id, caller.user_id, status)


async def read_output(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, process_id: uuid.UUID, *, since: int, limit: int
) -> tuple[ProcessRow, list[StoredChunk]]:
    async with state.pool.acquire() as conn:
        row = await repository.get_process(conn, sandbox_id, caller.user_id, process_id)
        if row is None:
            raise NotFound("No such process.")
        chunks = await repository.output(conn, process_id, since, limit)
    return row, chunks


async def write_stdin(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, process_id: uuid.UUID, *, data: bytes, eof: bool
) -> int:
    await get_process(state, caller, sandbox_id, process_id)
    reply = await ask(
        state,
        _request(caller, sandbox_id, process_id, "stdin", data=base64.b64encode(data).decode(), eof=eof),
    )
    return reply.written


async def signal(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, process_id: uuid.UUID, name: str
) -> ProcessRow:
    await get_process(state, caller, sandbox_id, process_id)
    await ask(state, _request(caller, sandbox_id, process_id, "signal", signal=name))
    return await get_process(state, caller, sandbox_id, process_id)


async def resize(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, process_id: uuid.UUID, *, cols: int, rows: int
) -> ProcessRow:
    row = await get_process(state, caller, sandbox_id, process_id)
    if not row.tty:
        raise InvalidState("The process has no terminal: start it with `tty: true` to resize it.")
    await ask(state, _request(caller, sandbox_id, process_id, "resize", cols=cols, rows=rows))
    return row
