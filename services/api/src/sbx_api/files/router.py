"""Routes of the files domain: a sandbox's files while it runs, is paused or is stopped.

Paths are absolute inside the sandbox. Bytes are streamed both ways through the orchestrator
(`rpc.py`): an upload is sent on as it arrives and a download is passed on as it comes, so no
file is ever held whole in this service.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sbx_common.errors import InvalidState, IsADirectory, ValidationFailed
from sbx_common.messages import FileEntry, FilesRequest
from sbx_common.status import Status
from starlette.requests import ClientDisconnect

from sbx_api.deps import Caller, CurrentUser, State, parse_id
from sbx_api.files import rpc
from sbx_api.files.ranges import ByteRange, parse_range
from sbx_api.files.schemas import ArchiveOut, DeletedOut, FileEntryOut, MkdirIn, MoveIn, UploadOut
from sbx_api.responses import ok
from sbx_api.sandboxes.service import get
from sbx_api.schemas import Envelope
from sbx_api.state import AppState

router = APIRouter(prefix="/sandboxes", tags=["files"])

_STATES = (Status.RUNNING, Status.PAUSED, Status.STOPPED)

PathQuery = Annotated[
    str, Query(min_length=1, max_length=4096, description="An absolute path inside the sandbox.")
]
ModeQuery = Annotated[
    str | None, Query(pattern=r"^0?[0-7]{1,4}$", description="Permission bits in octal (default 0644).")
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "NOT_FOUND: no such sandbox (or not yours), or no such path."},
    409: {
        "description": (
            "NOT_A_DIRECTORY / IS_A_DIRECTORY: the wrong kind of path; "
            "INVALID_STATE: the sandbox is not running, paused or stopped."
        )
    },
}


def entry_out(entry: FileEntry) -> dict[str, Any]:
    return FileEntryOut.model_validate(entry.model_dump()).dump()


async def _base(
    state: AppState, caller: Caller, raw_id: str, op: str, path: str, **fields: Any
) -> FilesRequest:
    """The request for `op`, once the sandbox is the caller's and in a state with files."""
    sandbox_id: uuid.UUID = parse_id(raw_id)
    row = await get(state, caller, sandbox_id)
    if row.status not in _STATES:
        raise InvalidState(
            f"The sandbox is {row.status}; its files are reachable while it is running, paused or stopped."
        )
    if not path.startswith("/") or "\0" in path:
        raise ValidationFailed("The path must be absolute (start with /).")
    return rpc.request(op, sandbox_id, caller.user_id, path, **fields)


@router.get(
    "/{sandbox_id}/files",
    response_model=None,
    responses={200: {"model": Envelope[list[FileEntryOut]]}, **_ERRORS},
)
async def list_files(sandbox_id: str, path: PathQuery, state: State, caller: CurrentUser) -> JSONResponse:
    """The entries of a directory, sorted by name."""
    reply = await rpc.call(state, await _base(state, caller, sandbox_id, "list", path))
    return ok([entry_out(e) for e in reply.entries or []])


@router.get(
    "/{sandbox_id}/files/stat",
    response_model=None,
    responses={200: {"model": Envelope[FileEntryOut]}, **_ERRORS},
)
async def stat_file(sandbox_id: str, path: PathQuery, state: State, caller: CurrentUser) -> JSONResponse:
    """One path's entry (a symlink is described as itself, not followed)."""
    reply = await rpc.call(state, await _base(state, caller, sandbox_id, "stat", path))
    assert reply.entry is not None
    return ok(entry_out(reply.entry))


@router.get(
    "/{sandbox_id}/files/content",
    response_model=None,
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The file's bytes, streamed, with Content-Length.",
        },
        206: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The requested byte range (`Range: bytes=a-b`), with Content-Range.",
        },
        416: {"description": "The range starts past the end of the file (Content-Range: bytes */size)."},
        **_ERRORS,
    },
)
async def download(
    sandbox_id: str, path: PathQuery, request: Request, state: State, caller: CurrentUser
) -> Response:
    """A file's bytes (a symlink is followed within the sandbox). One `Range` is honoured."""
    base = await _base(state, caller, sandbox_id, "stat", path, follow=True)
    entry = (await rpc.call(state, base)).entry
    assert entry is not None
    if entry.type == "dir":
        raise IsADirectory("The path is a directory.")
    size = entry.size
    byte_range: ByteRange | None = parse_range(request.headers.get("range"), size)
    if byte_range is not None and byte_range.unsatisfiable:
        return JSONResponse(
            {
                "success": False,
                "error": {"code": "VALIDATION_ERROR", "message": "The range is not satisfiable."},
            },
            status_code=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    offset, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    transfer = rpc.Download(
        state, base.model_copy(update={"op": "read", "offset": offset, "length": length, "follow": False})
    )
    await transfer.open()
    headers = {"Content-Length": str(length), "Accept-Ranges": "bytes"}
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    return StreamingResponse(
        transfer.chunks(),
        status_code=206 if byte_range else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


def _mode(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw, 8)
    except ValueError:
        raise ValidationFailed("mode must be octal permission bits, e.g. 0644.") from None
    if not 0 <= value <= 0o7777:
        raise ValidationFailed("mode must be octal permission bits, e.g. 0644.")
    return value


@router.put(
    "/{sandbox_id}/files/content",
    response_model=None,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={
        201: {
            "model": Envelope[UploadOut],
            "description": "Written (parents created); replaced atomically on a running sandbox.",
        },
        413: {"description": "PAYLOAD_TOO_LARGE: over SBX_MAX_UPLOAD_BYTES."},
        507: {"description": "STORAGE_FULL: the sandbox's disk or volume is full; nothing was left behind."},
        **_ERRORS,
    },
)
async def upload(
    *,
    sandbox_id: str,
    path: PathQuery,
    request: Request,
    state: State,
    caller: CurrentUser,
    mode: ModeQuery = None,
) -> JSONResponse:
    """Write the raw body to a file, streamed (at most SBX_MAX_UPLOAD_BYTES)."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    base = await _base(state, caller, sandbox_id, "write", path, mode=_mode(mode), size=size)
    try:
        reply = await rpc.upload(state, base, request.stream(), state.settings.max_upload_bytes)
    except ClientDisconnect:
        raise ValidationFailed("The client left before the body was complete.") from None
    assert reply.entry is not None
    return ok(UploadOut(path=reply.entry.path, size=reply.entry.size).dump(), status_code=201)


@router.delete(
    "/{sandbox_id}/files", response_model=None, responses={200: {"model": Envelope[DeletedOut]}, **_ERRORS}
)
async def delete_file(
    sandbox_id: str,
    path: PathQuery,
    state: State,
    caller: CurrentUser,
    recursive: Annotated[bool, Query(description="Delete a directory with everything in it.")] = False,
) -> JSONResponse:
    """Delete a file, a symlink (not what it names) or a directory (empty, or with `recursive`)."""
    await rpc.call(state, await _base(state, caller, sandbox_id, "delete", path, recursive=recursive))
    return ok(DeletedOut(path=path).dump())


@router.post(
    "/{sandbox_id}/files/mkdir",
    response_model=None,
    status_code=201,
    responses={201: {"model": Envelope[FileEntryOut]}, **_ERRORS},
)
async def make_directory(sandbox_id: str, body: MkdirIn, state: State, caller: CurrentUser) -> JSONResponse:
    """Create a directory (with `parents`, its missing parents too, and an existing one is fine)."""
    reply = await rpc.call(
        state, await _base(state, caller, sandbox_id, "mkdir", body.path, parents=body.parents)
    )
    assert reply.entry is not None
    return ok(entry_out(reply.entry), status_code=201)


@router.post(
    "/{sandbox_id}/files/move",
    response_model=None,
    responses={200: {"model": Envelope[FileEntryOut]}, **_ERRORS},
)
async def move_file(sandbox_id: str, body: MoveIn, state: State, caller: CurrentUser) -> JSONResponse:
    """Move or rename a file or directory; what is at `to` is replaced only with `overwrite`."""
    base = await _base(state, caller, sandbox_id, "move", body.from_, to=body.to, overwrite=body.overwrite)
    reply = await rpc.call(state, base)
    assert reply.entry is not None
    return ok(entry_out(reply.entry))


_TAR = {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/{sandbox_id}/files/archive",
    response_model=None,
    response_class=StreamingResponse,
    responses={200: {"content": _TAR, "description": "A tar stream of the file or tree."}, **_ERRORS},
)
async def download_archive(sandbox_id: str, path: PathQuery, state: State, caller: CurrentUser) -> Response:
    """A tar of a file or a directory tree (its top entry named after the path), streamed."""
    base = await _base(state, caller, sandbox_id, "archive_read", path)
    transfer = rpc.Download(state, base)
    await transfer.open()
    name = path.rstrip("/").rsplit("/", 1)[-1] or "root"
    headers = {"Content-Disposition": f'attachment; filename="{name}.tar"'}
    return StreamingResponse(transfer.chunks(), media_type="application/x-tar", headers=headers)


@router.put(
    "/{sandbox_id}/files/archive",
    response_model=None,
    status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": _TAR}},
    responses={
        201: {
            "model": Envelope[ArchiveOut],
            "description": "Extracted into the directory (made if missing).",
        },
        400: {
            "description": (
                "VALIDATION_ERROR: not a tar, or an entry would land outside the directory (absolute"
                " names, `..`, symlinks or hard links pointing out, a path through a symlink); nothing"
                " was written."
            )
        },
        413: {"description": "PAYLOAD_TOO_LARGE: over SBX_MAX_UPLOAD_BYTES."},
        507: {"description": "STORAGE_FULL: the sandbox's disk or volume is full."},
        **_ERRORS,
    },
)
async def upload_archive(
    sandbox_id: str, path: PathQuery, request: Request, state: State, caller: CurrentUser
) -> JSONResponse:
    """Extract a tar body into a directory; the whole archive is checked before anything is written."""
    base = await _base(state, caller, sandbox_id, "archive_write", path)
    try:
        reply = await rpc.upload(state, base, request.stream(), state.settings.max_upload_bytes)
    except ClientDisconnect:
        raise ValidationFailed("The client left before the body was complete.") from None
    return ok(ArchiveOut(path=path, entries=reply.count or 0).dump(), status_code=201)
