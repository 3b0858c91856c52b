"""Routes of the processes domain (the "Processes" part of the contract)."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import JSONResponse

from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.processes import service
from sbx_api.processes.repository import ProcessRow, StoredChunk
from sbx_api.processes.schemas import (
    CreateProcessRequest,
    OutputChunkOut,
    OutputPage,
    ProcessOut,
    ProcessStatus,
    ResizeRequest,
    SignalRequest,
    StdinWritten,
)
from sbx_api.processes.socket import serve_process
from sbx_api.responses import ok
from sbx_api.schemas import Envelope

router = APIRouter(tags=["processes"])

_PROCESS = {"model": Envelope[ProcessOut]}
_PREFIX = "/sandboxes/{sandbox_id}/processes"


def process_out(row: ProcessRow) -> ProcessOut:
    return ProcessOut(
        id=row.id,
        sandbox_id=row.sandbox_id,
        command=row.command,
        pid=row.pid,
        tty=row.tty,
        status=row.status,
        exit_code=row.exit_code,
        signal=row.signal,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def chunk_out(chunk: StoredChunk, encoding: str) -> OutputChunkOut:
    out = OutputChunkOut(seq=chunk.seq, stream=chunk.stream, timestamp=chunk.ts)
    if encoding == "base64":
        out.data = base64.b64encode(chunk.data).decode()
    else:
        out.text = chunk.data.decode("utf-8", errors="replace")
    return out


@router.post(
    _PREFIX,
    status_code=201,
    response_model=None,
    responses={
        201: _PROCESS,
        409: {"description": "NOT_RUNNING: the sandbox is not running."},
        429: {
            "description": "QUOTA_EXCEEDED: SBX_MAX_PROCESSES_PER_USER running processes;"
            " `details` has `limit` and `current`."
        },
    },
)
async def create_process(
    sandbox_id: str, body: CreateProcessRequest, state: State, caller: CurrentUser
) -> JSONResponse:
    """Start a background process; it keeps running, and its output is kept, whatever happens to
    the connection (and across API or orchestrator restarts)."""
    row = await service.create(state, caller, parse_id(sandbox_id), body)
    return ok(process_out(row).dump(), 201)


@router.get(_PREFIX, response_model=None, responses={200: {"model": Envelope[list[ProcessOut]]}})
async def list_processes(
    sandbox_id: str,
    state: State,
    caller: CurrentUser,
    status: Annotated[ProcessStatus | None, Query(description="Only processes in this status.")] = None,
) -> JSONResponse:
    """The sandbox's running processes and its last 100 ended ones, newest first."""
    rows = await service.list_processes(state, caller, parse_id(sandbox_id), status)
    return JSONResponse({"success": True, "data": [process_out(r).dump() for r in rows], "nextCursor": None})


@router.get(_PREFIX + "/{process_id}", response_model=None, responses={200: _PROCESS})
async def get_process(sandbox_id: str, process_id: str, state: State, caller: CurrentUser) -> JSONResponse:
    """One process."""
    row = await service.get_process(state, caller, parse_id(sandbox_id), parse_id(process_id))
    return ok(process_out(row).dump())


@router.get(_PREFIX + "/{process_id}/output", response_model=OutputPage)
async def process_output(
    *,
    sandbox_id: str,
    process_id: str,
    state: State,
    caller: CurrentUser,
    since: Annotated[int, Query(ge=0, le=2**62, description="Only output after this seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="How many chunks at most.")] = 1000,
    encoding: Annotated[
        Literal["text", "base64"], Query(description="`text` (UTF-8) or `base64` (the exact bytes).")
    ] = "text",
) -> JSONResponse:
    """The kept output after `since`, oldest first: call again with `nextSince` for more."""
    row, chunks = await service.read_output(
        state, caller, parse_id(sandbox_id), parse_id(process_id), since=since, limit=limit
    )
    next_since = chunks[-1].seq if chunks else max(since, row.trimmed_through)
    return JSONResponse(
        {
            "success": True,
            "data": [
                chunk_out(c, encoding).model_dump(by_alias=True, mode="json", exclude_none=True)
                for c in chunks
            ],
            "nextSince": next_since,
            "truncatedBefore": row.trimmed_through + 1 if row.trimmed_through else None,
        }
    )


@router.post(
    _PREFIX + "/{process_id}/stdin",
    response_model=Envelope[StdinWritten],
    openapi_extra={
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
    responses={409: {"description": "INVALID_STATE: started without stdin, stdin closed, or ended."}},
)
async def process_stdin(
    *,
    sandbox_id: str,
    process_id: str,
    request: Request,
    state: State,
    caller: CurrentUser,
    eof: Annotated[bool, Query(description="Close stdin after writing the body.")] = False,
) -> JSONResponse:
    """Write the raw body to the process's stdin (`?eof=true` closes it afterwards)."""
    data = await request.body()
    written = await service.write_stdin(
        state, caller, parse_id(sandbox_id), parse_id(process_id), data=data, eof=eof
    )
    return ok(StdinWritten(written=written).dump())


@router.post(_PREFIX + "/{process_id}/signal", response_model=None, responses={200: _PROCESS})
async def process_signal(
    sandbox_id: str, process_id: str, body: SignalRequest, state: State, caller: CurrentUser
) -> JSONResponse:
    """Send a signal to the process (and its process group)."""
    row = await service.signal(state, caller, parse_id(sandbox_id), parse_id(process_id), body.signal)
    return ok(process_out(row).dump())


@router.post(
    _PREFIX + "/{process_id}/resize",
    response_model=None,
    responses={200: _PROCESS, 409: {"description": "INVALID_STATE: the process has no terminal."}},
)
async def process_resize(
    sandbox_id: str, process_id: str, body: ResizeRequest, state: State, caller: CurrentUser
) -> JSONResponse:
    """Resize the process's terminal (`tty` processes only)."""
    row = await service.resize(
        state, caller, parse_id(sandbox_id), parse_id(process_id), cols=body.cols, rows=body.rows
    )
    return ok(process_out(row).dump())


@router.websocket("/ws/sandboxes/{sandbox_id}/processes/{process_id}")
async def process_socket(websocket: WebSocket, sandbox_id: str, process_id: str, state: State) -> None:
    """Output from `since` on, then live, then the exit; the client sends stdin (text or binary
    frames), `{"type": "signal", "signal": ...}` and `{"type": "resize", "cols", "rows"}`."""
    await serve_process(websocket, state, sandbox_id, process_id)
