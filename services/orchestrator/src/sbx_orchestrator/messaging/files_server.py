"""Files of a sandbox: `sbx.rpc.files` (queue group "orchestrator") and the byte transfers.

A FilesRequest names the operation. `stat`, `list`, `mkdir`, `delete` and `move` are answered
with a FilesReply. `read` and `write` are answered once the transfer is ready, then their bytes
travel on the direct connection the API asked for (`sbx_common.datachannel`; the reply says
where to connect) or else on `sbx.files.<transferId>.{up,down}` with flow control
(`sbx_common.filestream`): a download's chunks go down as the API's client takes them; an
upload's chunks come up, each written into the sandbox before its credit goes back (on a
direct connection, TCP's own flow control does this), and its result (the entry, or why it
failed) goes down as the final frame. A transfer whose other side goes silent or cancels ends at
once: an abandoned upload leaves no file behind (see `engine/files_running.py`).

How the files are reached depends on the container's state, looked up for every request: a
running container from inside, through its agent (`engine/files_agent.py`) or, made without
the agent, shell scripts by exec; a paused or stopped one through Docker's archive API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import IO, Any

import docker.errors
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.datachannel import DataListener, SocketChannel
from sbx_common.filestream import CHUNK, Channel, TransferAborted
from sbx_common.messages import FilesReply, FilesRequest
from sbx_common.status import Status

from sbx_orchestrator.agent.session import AgentGone
from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.engine import files_archive, files_common, files_tar
from sbx_orchestrator.engine.files_agent import AgentFiles
from sbx_orchestrator.engine.files_archive import ArchiveFiles, FrozenFiles
from sbx_orchestrator.engine.files_common import FileOpError
from sbx_orchestrator.engine.files_running import RunningFiles

logger = logging.getLogger(__name__)

QUEUE_GROUP = "orchestrator"
_STATES = (Status.RUNNING, Status.PAUSED, Status.STOPPED)
Files = RunningFiles | ArchiveFiles
Transfer = Channel | SocketChannel
# Docker's archive API adds and overwrites but never removes, and nothing runs in a stopped
# sandbox (docs/files.md, "Paused and stopped sandboxes").
_CANNOT_CHANGE = (
    "{what} needs the sandbox running or paused (a stopped sandbox's files can be read and"
    " written, not removed or renamed); start it first."
)


async def _spooled_chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    while data := await loop.run_in_executor(None, spool.read, CHUNK):
        yield data


def _refused(error: FileOpError) -> FilesReply:
    return FilesReply(ok=False, error_code=error.code, error_message=error.message)


class FilesServer:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        settings = context.settings
        self._data = (
            DataListener(settings.data_listen, settings.data_advertise) if settings.data_listen else None
        )

    async def start(self) -> None:
        if self._data is not None:
            await self._data.start()
        self._subscription = await self.context.nc.subscribe(
            subjects.rpc(self.context.settings.host_id, subjects.RPC_FILES),
            queue=QUEUE_GROUP,
            cb=self._on_request,
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._data is not None:
            await self._data.stop()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_request(self, msg: Msg) -> None:
        self._spawn(self._answer(msg))

    async def _answer(self, msg: Msg) -> None:
        try:
            reply = await self.handle(msg.data)
        except FileOpError as exc:
            reply = _refused(exc)
        except (docker.errors.DockerException, OSError) as exc:
            logger.warning("file operation failed", extra={"error": repr(exc)})
            reply = _refused(FileOpError("UNAVAILABLE", "The sandbox's files could not be reached."))
        except Exception:  # a bug here must still answer, or the API would wait out its timeout
            logger.exception("file operation failed unexpectedly")
            reply = _refused(FileOpError("UNAVAILABLE", "The file operation failed."))
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(reply.to_bytes())

    async def _files(self, request: FilesRequest) -> Files:
        target = await self.context.repository.exec_target(request.sandbox_id)
        if target is None or target.owner_id != request.owner_id:
            raise FileOpError("NOT_FOUND", "The sandbox was not found.")
        if target.status not in _STATES or not target.container_id:
            raise FileOpError("INVALID_STATE", f"The sandbox is {target.status.value}.")
        info = await self.context.engine.inspect(target.container_id)
        if info is None:
            raise FileOpError("INVALID_STATE", "The sandbox has no container.")
        state = info.get("State") or {}
        if state.get("Running") and not state.get("Paused"):
            agents = self.context.agents
            if await agents.has_agent(target.container_id):
                # Through the agent; a container made without it keeps the shell scripts.
                try:
                    session = await agents.session(request.sandbox_id, target.container_id)
                except (AgentGone, OSError, TimeoutError) as exc:
                    logger.warning("the agent is unreachable: files by exec", extra={"error": repr(exc)})
                else:
                    host = info.get("HostConfig") or {}
                    # Bytes by Docker's archive API only where the sandbox sees what Docker
                    # writes: runc, a writable root and no tmpfs (engine/files_bulk.py).
                    bulk = (
                        host.get("Runtime") in (None, "", "runc")
                        and not host.get("ReadonlyRootfs")
                        and not host.get("Tmpfs")
                    )
                    return AgentFiles(self.context.engine, target.container_id, session, bulk=bulk)
            return RunningFiles(self.context.engine, target.container_id)
        pid = int(state.get("Pid") or 0)
        host = info.get("HostConfig") or {}
        runc = host.get("Runtime") in (None, "", "runc")
        if state.get("Paused") and runc and files_archive.can_enter(pid, target.container_id):
            return FrozenFiles(self.context.engine, target.container_id, pid)
        return ArchiveFiles(self.context.engine, target.container_id)

    async def handle(self, data: bytes) -> FilesReply:
        try:
            request = FilesRequest.model_validate_json(data)
        except ValidationError:
            raise FileOpError("VALIDATION_ERROR", "bad request") from None
        path = files_common.normalise(request.path)
        files = await self._files(request)
        match request.op:
            case "stat":
                return FilesReply(entry=await files.stat(path, request.follow))
            case "list":
                return FilesReply(entries=await files.list_dir(path))
            case "mkdir":
                files_common.refuse_platform(path)
                return FilesReply(entry=await files.mkdir(path, request.parents))
            case "delete":
                files_common.refuse_root(path)
                files_common.refuse_platform(path)
                if isinstance(files, ArchiveFiles) and not isinstance(files, FrozenFiles):
                    raise FileOpError("NOT_RUNNING", _CANNOT_CHANGE.format(what="Deleting"))
                await files.delete(path, request.recursive)
                return FilesReply()
            case "move":
                target = files_common.normalise(request.to or "")
                for each in (path, target):
                    files_common.refuse_root(each)
                    files_common.refuse_platform(each)
                if isinstance(files, ArchiveFiles) and not isinstance(files, FrozenFiles):
                    raise FileOpError("NOT_RUNNING", _CANNOT_CHANGE.format(what="Moving"))
                if target == path:
                    return FilesReply(entry=await files.stat(path))
                if target.startswith(path + "/"):
                    raise FileOpError("VALIDATION_ERROR", "A directory cannot move into itself.")
                return FilesReply(entry=await files.move(path, target, request.overwrite))
            case "read":
                return await self._open_read(request, path, files)
            case "write":
                return await self._open_write(request, path, files)
            case "archive_read":
                transfer = self._transfer_id(request)
                await files.stat(path, follow=True)  # a missing path is refused before any byte
                return await self._open_download(request, transfer, files.tar_read(path))
            case "archive_write":
                return await self._open_archive_write(request, path, files)
        raise FileOpError("VALIDATION_ERROR", "unknown operation")

    def _transfer_id(self, request: FilesRequest) -> str:
        try:
            return uuid.UUID(hex=request.transfer_id or "").hex
        except ValueError:
            raise FileOpError("VALIDATION_ERROR", "bad transfer id") from None

    async def _open_read(
        self, request: FilesRequest, path: str, files: RunningFiles | ArchiveFiles
    ) -> FilesReply:
        transfer = self._transfer_id(request)
        if request.offset < 0 or (request.length is not None and request.length < 0):
            raise FileOpError("VALIDATION_ERROR", "bad range")
        return await self._open_download(request, transfer, files.read(path, request.offset, request.length))

    async def _channel(self, request: FilesRequest, transfer: str) -> tuple[Transfer, FilesReply]:
        """The transfer's channel and the reply that opens it: a direct connection the API makes
        when it asked for one and this orchestrator listens, else NATS subjects."""
        if request.data_key_sha256 and self._data is not None:
            channel = self._data.expect(transfer, request.data_key_sha256)
            return channel, FilesReply(data_address=self._data.address)
        nats_channel = Channel(self.context.nc, subjects.files_down(transfer), subjects.files_up(transfer))
        await nats_channel.open()
        return nats_channel, FilesReply()

    async def _open_download(
        self, request: FilesRequest, transfer: str, chunks: AsyncIterator[bytes | bytearray]
    ) -> FilesReply:
        channel, reply = await self._channel(request, transfer)
        self._spawn(self._pump_read(channel, chunks))
        return reply

    async def _pump_read(self, channel: Transfer, chunks: AsyncIterator[bytes | bytearray]) -> None:
        pending = bytearray()
        try:
            await channel.open()  # a direct one: the API's connection
            # Commands write in small blocks (busybox `cat`: 4 KiB): gathered into whole frames.
            async for data in chunks:
                if not pending and len(data) == channel.chunk:
                    await channel.send(data)  # a whole frame as it came (files_bulk): no copy
                    continue
                pending += data
                if len(pending) >= channel.chunk:
                    # Whole frames only: the remainder waits for the next piece, so a 1 MiB
                    # piece never leaves as one full frame and one sliver.
                    whole = len(pending) - len(pending) % channel.chunk
                    with memoryview(pending) as view:
                        frame = bytes(view[:whole])
                    await channel.send(frame)
                    del pending[:whole]
            if pending:
                await channel.send(bytes(pending))
            await channel.end()
        except (TransferAborted, FileOpError, docker.errors.DockerException, OSError) as exc:
            logger.info("download ended early", extra={"error": repr(exc)})
            await channel.cancel()
        except asyncio.CancelledError:
            await channel.cancel()  # the orchestrator is stopping: the API learns it at once
            raise
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
            await channel.close()

    async def _open_write(
        self, request: FilesRequest, path: str, files: RunningFiles | ArchiveFiles
    ) -> FilesReply:
        transfer = self._transfer_id(request)
        files_common.refuse_root(path)
        files_common.refuse_platform(path)
        if request.mode is not None and not 0 <= request.mode <= 0o7777:
            raise FileOpError("VALIDATION_ERROR", "mode must be octal permission bits (e.g. 0644).")
        if isinstance(files, RunningFiles):
            await files.prepare_write(path)
        channel, reply = await self._channel(request, transfer)
        self._spawn(self._pump_write(channel, files, request, path, transfer))
        return reply

    async def _open_archive_write(self, request: FilesRequest, path: str, files: Files) -> FilesReply:
        transfer = self._transfer_id(request)
        files_common.refuse_root(path)
        files_common.refuse_platform(path)
        channel, reply = await self._channel(request, transfer)
        self._spawn(self._pump_archive(channel, files, path))
        return reply

    async def _pump_archive(self, channel: Transfer, files: Files, path: str) -> None:
        """Spool the tar (checking nothing yet), check every header, then extract it."""
        loop = asyncio.get_running_loop()
        try:
            await channel.open()  # a direct one: the API's connection
            with tempfile.TemporaryFile() as spool:
                while True:
                    frame = await channel.receive()
                    if frame.kind != "data":
                        break
                    await loop.run_in_executor(None, spool.write, frame.data)
                spool.flush()
                check = await loop.run_in_executor(None, files_tar.check_spooled, spool)
                if isinstance(files, RunningFiles):
                    await files.tar_write(path, check.existing_prefixes(), _spooled_chunks(spool))
                else:
                    await files.tar_write(path, check.existing_prefixes(), spool)
            await channel.result(FilesReply(count=check.entries).to_bytes())
        except FileOpError as exc:
            with contextlib.suppress(TransferAborted):
                await channel.result(_refused(exc).to_bytes())
        except TransferAborted as exc:
            logger.info("archive upload abandoned", extra={"error": str(exc)})
        except asyncio.CancelledError:
            await channel.cancel()  # the orchestrator is stopping: the API learns it at once
            raise
        except (docker.errors.DockerException, OSError) as exc:
            logger.warning("archive upload failed", extra={"error": repr(exc)})
            with contextlib.suppress(TransferAborted):
                error = FileOpError("UNAVAILABLE", "The archive could not be extracted.")
                await channel.result(_refused(error).to_bytes())
        finally:
            await channel.close()

    async def _pump_write(
        self,
        channel: Transfer,
        files: Files,
        request: FilesRequest,
        path: str,
        transfer: str,
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                frame = await channel.receive()
                if frame.kind != "data":
                    return
                yield frame.data

        try:
            await channel.open()  # a direct one: the API's connection
            if isinstance(files, AgentFiles):
                entry = await files.write(path, chunks(), request.mode, transfer, request.size)
            elif isinstance(files, RunningFiles):
                entry = await files.write(path, chunks(), request.mode, transfer)
            else:
                entry = await files.write(path, chunks(), request.mode, request.size)
            await channel.result(FilesReply(entry=entry).to_bytes())
        except FileOpError as exc:
            with contextlib.suppress(TransferAborted):
                await channel.result(_refused(exc).to_bytes())
        except TransferAborted as exc:
            logger.info("upload abandoned", extra={"error": str(exc)})
        except asyncio.CancelledError:
            await channel.cancel()  # the orchestrator is stopping: the API learns it at once
            raise
        except (docker.errors.DockerException, OSError) as exc:
            logger.warning("upload failed", extra={"error": repr(exc)})
            with contextlib.suppress(TransferAborted):
                error = FileOpError("UNAVAILABLE", "The file could not be written.")
                await channel.result(_refused(error).to_bytes())
        finally:
            await channel.close()
