"""The orchestrator's file operations, asked over NATS (`sbx.rpc.files`), and the byte
transfers they open: on a direct connection to the orchestrator when it offers one
(`sbx_common.datachannel`), else on NATS (`sbx_common.filestream`). The API never touches
Docker: it relays bytes between its HTTP client and the orchestrator, never holding more than
a transfer's window."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Final

import nats.errors
from pydantic import ValidationError
from sbx_common import datachannel, subjects
from sbx_common.codes import ErrorCode
from sbx_common.datachannel import SocketChannel
from sbx_common.errors import (
    Conflict,
    InvalidState,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotRunning,
    PayloadTooLarge,
    PlatformError,
    StorageFull,
    Unavailable,
    ValidationFailed,
)
from sbx_common.filestream import Channel, PeerFinished, TransferAborted
from sbx_common.logging import trace_id_var
from sbx_common.messages import FilesReply, FilesRequest

from sbx_api.hosts import routing
from sbx_api.state import AppState

logger = logging.getLogger(__name__)

RPC_TIMEOUT = 30.0

_ERRORS: Final[dict[ErrorCode, type[PlatformError]]] = {
    ErrorCode.VALIDATION_ERROR: ValidationFailed,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.INVALID_STATE: InvalidState,
    ErrorCode.NOT_RUNNING: NotRunning,
    ErrorCode.NOT_A_DIRECTORY: NotADirectory,
    ErrorCode.IS_A_DIRECTORY: IsADirectory,
    ErrorCode.STORAGE_FULL: StorageFull,
    ErrorCode.PAYLOAD_TOO_LARGE: PayloadTooLarge,
    ErrorCode.UNAVAILABLE: Unavailable,
}


def raise_for(reply: FilesReply) -> FilesReply:
    if reply.ok and not reply.error_code:
        return reply
    try:
        error = _ERRORS.get(ErrorCode(reply.error_code or ""), Unavailable)
    except ValueError:
        error = Unavailable
    raise error(reply.error_message)


async def call(state: AppState, request: FilesRequest) -> FilesReply:
    try:
        subject = await routing.rpc_subject(state, request.sandbox_id, subjects.RPC_FILES)
        response = await state.nc.request(subject, request.to_bytes(), timeout=RPC_TIMEOUT)
    except nats.errors.NoRespondersError:
        raise Unavailable("No orchestrator is available.") from None
    except (nats.errors.Error, TimeoutError):
        raise Unavailable("The orchestrator did not answer in time.") from None
    try:
        reply = FilesReply.model_validate_json(response.data)
    except ValidationError:
        raise Unavailable("The orchestrator's answer was unreadable.") from None
    return raise_for(reply)


def request(op: str, sandbox_id: uuid.UUID, owner_id: uuid.UUID, path: str, **fields: object) -> FilesRequest:
    return FilesRequest.model_validate(
        {
            "op": op,
            "sandbox_id": sandbox_id,
            "owner_id": owner_id,
            "path": path,
            "trace_id": trace_id_var.get(),
            **fields,
        }
    )


Transfer = Channel | SocketChannel


async def open_transfer(state: AppState, base: FilesRequest) -> Transfer:
    """Ask the orchestrator for a transfer and connect its channel. The NATS subjects are
    listened on first (an orchestrator that offers no direct connection sends at once); when it
    offers one, the bytes take it and the subscription goes."""
    transfer_id = uuid.uuid4().hex
    key, key_sha256 = datachannel.new_key()
    fields: dict[str, object] = {"transfer_id": transfer_id}
    if state.settings.files_direct:
        fields["data_key_sha256"] = key_sha256
    request = base.model_copy(update=fields)
    nats_channel = Channel(state.nc, subjects.files_up(transfer_id), subjects.files_down(transfer_id))
    await nats_channel.open()
    try:
        reply = await call(state, request)
    except BaseException:
        await nats_channel.close()
        raise
    if not reply.data_address:
        return nats_channel
    await nats_channel.close()
    address = reply.data_address

    async def connect() -> datachannel.Link:
        return await datachannel.connect(address, transfer_id, key)

    channel = SocketChannel(connect=connect)
    try:
        await channel.open()
    except TransferAborted as exc:
        logger.warning("no data connection to the orchestrator", extra={"error": str(exc)})
        raise Unavailable("The sandbox's host could not be reached for the transfer.") from None
    return channel


class Download:
    """A read transfer: opened (so errors are known before the response starts), then streamed."""

    def __init__(self, state: AppState, base: FilesRequest) -> None:
        self.state = state
        self.base = base
        self.channel: Transfer | None = None

    async def open(self) -> None:
        self.channel = await open_transfer(self.state, self.base)

    async def chunks(self) -> AsyncIterator[bytes | memoryview]:
        """The bytes as they come; a transfer that breaks ends the response short (the client sees
        fewer bytes than its Content-Length, never a silently short file)."""
        assert self.channel is not None, "open() first"
        finished = False
        try:
            while True:
                frame = await self.channel.receive()
                if frame.kind != "data":
                    finished = True
                    return
                # A direct connection's frames are the buffers they were read into (bytearray):
                # passed on as views, which the response writes as they are.
                yield memoryview(frame.data) if isinstance(frame.data, bytearray) else frame.data
        except TransferAborted as exc:
            logger.info("download broke off", extra={"error": str(exc)})
            raise
        finally:
            if not finished:
                await self.channel.cancel()
            await self.channel.close()


async def upload(state: AppState, base: FilesRequest, body: AsyncIterator[bytes], limit: int) -> FilesReply:
    """Send the body to the orchestrator as it arrives (in whole frames, within the window)."""
    channel = await open_transfer(state, base)
    done = False
    try:
        received = 0
        # The body's pieces (at most 64 KiB each from uvicorn) gathered into frames of up to
        # `chunk` bytes, sent as a list: a direct connection writes them without joining them.
        parts: list[bytes] = []
        gathered = 0
        try:
            try:
                async for data in body:
                    received += len(data)
                    if received > limit:
                        raise PayloadTooLarge()
                    if parts and gathered + len(data) > channel.chunk:
                        await channel.send_parts(parts)
                        parts, gathered = [], 0
                    parts.append(data)
                    gathered += len(data)
                if parts:
                    await channel.send_parts(parts)
                await channel.end()
            except PeerFinished:
                pass  # the orchestrator's answer (why it stopped) is among the frames
            while True:
                frame = await channel.receive()
                if frame.kind == "result":
                    break
        except TransferAborted:
            # The orchestrator stopped, went silent or lost NATS: nothing was written (it removes
            # its temporary file), and the request can be made again.
            raise Unavailable("The upload was interrupted; nothing was written.") from None
        done = True
        try:
            reply = FilesReply.model_validate_json(frame.data)
        except ValidationError:
            raise Unavailable("The orchestrator's answer was unreadable.") from None
        return raise_for(reply)
    finally:
        if not done:
            await channel.cancel()
        await channel.close()
