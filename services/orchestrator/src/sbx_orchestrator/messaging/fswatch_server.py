"""File watches: the agent's inotify watches of a running sandbox, bridged to the API over NATS.

`sbx.rpc.fswatch.open` (queue group "orchestrator") carries a FileWatchOpenRequest. The owner,
the running status and the agent are checked, the agent is asked to watch (`fswatch`, the path
resolved inside the sandbox), and the reply says whether it worked. From then on the watch lives
on two core NATS subjects:

- `sbx.fswatch.<watch>.out`: FileWatchFrame, each change as the agent reports it, `overflow`
  when changes were dropped, and last `end` with the reason;
- `sbx.fswatch.<watch>.ctl`: FileWatchControl from the API: `keepalive` (a request, answered,
  so the API learns when this side is gone) and `close`.

A watch ends when the API closes it, when no keepalive came for IDLE_AFTER seconds (the API went
away without closing), when its agent session closes (the sandbox stopped, paused or was
destroyed: reason `stopped`), when the directory is deleted (`deleted`), and at shutdown
(`restart`). The agent drops the inotify watches itself when its session ends, so a watch never
outlives the orchestrator that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import RpcErrorCode
from sbx_common.messages import FileWatchControl, FileWatchFrame, FileWatchOpenReply, FileWatchOpenRequest
from sbx_common.status import Status

from sbx_orchestrator.agent.session import AgentError, AgentGone, AgentSession
from sbx_orchestrator.context import OrchestratorContext

logger = logging.getLogger(__name__)

QUEUE_GROUP = "orchestrator"
IDLE_AFTER = 60.0  # seconds without a keepalive before a watch is taken for abandoned
CHECK_INTERVAL = 5.0
QUEUE_SIZE = 4096  # frames waiting for NATS per watch; beyond, `overflow`
_AGENT_CODES: dict[str, RpcErrorCode] = {
    "NOT_FOUND": "NOT_FOUND",
    "NOT_A_DIRECTORY": "NOT_A_DIRECTORY",
    "VALIDATION_ERROR": "VALIDATION_ERROR",
}


def _refused(code: RpcErrorCode, message: str) -> FileWatchOpenReply:
    return FileWatchOpenReply(ok=False, error_code=code, error_message=message)


class FileWatch:
    """One watch: the agent's events queued and published in order, until its end."""

    def __init__(self, server: FileWatchServer, watch_id: str, session: AgentSession) -> None:
        self.server = server
        self.watch_id = watch_id
        self.session = session
        self.last_keepalive = time.monotonic()
        self.subscription: Subscription | None = None
        self.queue: asyncio.Queue[FileWatchFrame] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False
        self.ended = False
        self.task = asyncio.create_task(self._pump(), name=f"fswatch-{watch_id[:12]}")

    def put(self, frame: FileWatchFrame) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True

    def end(self, reason: str) -> None:
        """Publish the end once (after what is queued) and forget the watch."""
        if self.ended:
            return
        if self.queue.full():  # the end must get through: it costs the oldest change
            self.queue.get_nowait()
            self.overflowed = True
        self.queue.put_nowait(FileWatchFrame(type="end", reason=reason))
        self.ended = True
        self.server.watches.pop(self.watch_id, None)

    async def _pump(self) -> None:
        nc = self.server.context.nc
        subject = subjects.fswatch_output(self.watch_id)
        try:
            while True:
                frame = await self.queue.get()
                if self.overflowed:
                    self.overflowed = False
                    await nc.publish(subject, FileWatchFrame(type="overflow").to_bytes())
                await nc.publish(subject, frame.to_bytes())
                if frame.type == "end":
                    break
        except nats.errors.Error:
            logger.warning("a file watch's frame could not be published", extra={"watch": self.watch_id})
        finally:
            if self.subscription is not None:
                with contextlib.suppress(nats.errors.Error):
                    await self.subscription.unsubscribe()


class FileWatchServer:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.watches: dict[str, FileWatch] = {}
        self._subscription: Subscription | None = None
        self._checker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tracked: set[int] = set()  # sessions whose close ends their watches

    async def start(self) -> None:
        self.context.agents.on_fs_event = self._on_agent_event
        self._subscription = await self.context.nc.subscribe(
            subjects.rpc(self.context.settings.host_id, subjects.RPC_FSWATCH_OPEN),
            queue=QUEUE_GROUP,
            cb=self._on_request,
        )
        self._checker = asyncio.create_task(self._check_idle(), name="fswatch-idle")

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        pumps = [watch.task for watch in self.watches.values()]
        for watch in list(self.watches.values()):
            watch.end("restart")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), 5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_request(self, msg: Msg) -> None:
        self._spawn(self._answer(msg))

    async def _answer(self, msg: Msg) -> None:
        try:
            reply = await self._open(msg.data)
        except Exception:  # a bug here must still answer, or the API would wait out its timeout
            logger.exception("opening a file watch failed unexpectedly")
            reply = _refused("UNAVAILABLE", "The file watch could not be opened.")
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(reply.to_bytes())

    async def _open(self, data: bytes) -> FileWatchOpenReply:
        try:
            request = FileWatchOpenRequest.model_validate_json(data)
        except ValidationError:
            return _refused("VALIDATION_ERROR", "bad request")
        target = await self.context.repository.exec_target(request.sandbox_id)
        if target is None or target.owner_id != request.owner_id:
            return _refused("NOT_FOUND", "The sandbox was not found.")
        if target.status != Status.RUNNING or not target.container_id:
            return _refused("NOT_RUNNING", f"The sandbox is {target.status.value}.")
        agents = self.context.agents
        if not await agents.has_agent(target.container_id):
            return _refused("UNAVAILABLE", "This sandbox was made without the agent, which watching needs.")
        try:
            session = await agents.session(request.sandbox_id, target.container_id)
            watch = FileWatch(self, request.watch_id, session)
            self.watches[request.watch_id] = watch
            self._track(session)
            watch.subscription = await self.context.nc.subscribe(
                subjects.fswatch_control(request.watch_id), cb=self._on_control
            )
            header, _ = await session.request(
                "fswatch",
                {"watch": request.watch_id, "path": request.path, "recursive": request.recursive},
                reply_within=self.context.settings.agent_connect_timeout,
            )
        except AgentError as exc:
            self._discard(request.watch_id)
            return _refused(_AGENT_CODES.get(exc.code, "UNAVAILABLE"), exc.message)
        except (AgentGone, OSError, TimeoutError) as exc:
            self._discard(request.watch_id)
            logger.warning("file watch: the agent could not be reached", extra={"error": repr(exc)})
            return _refused("UNAVAILABLE", "The sandbox's agent could not be reached.")
        return FileWatchOpenReply(ok=True, path=str(header.get("path") or request.path))

    def _discard(self, watch_id: str) -> None:
        watch = self.watches.pop(watch_id, None)
        if watch is not None:
            watch.ended = True
            watch.task.cancel()
            if watch.subscription is not None:
                self._spawn(watch.subscription.unsubscribe())

    def _track(self, session: AgentSession) -> None:
        if id(session) not in self._tracked:
            self._tracked.add(id(session))
            session.on_close.append(self._session_closed)

    def _session_closed(self, session: AgentSession) -> None:
        self._tracked.discard(id(session))
        for watch in list(self.watches.values()):
            if watch.session is session:
                watch.end("stopped")

    def _on_agent_event(self, session: AgentSession, header: dict[str, Any], body: bytes) -> None:
        watch = self.watches.get(str(header.get("watch") or ""))
        if watch is None or watch.session is not session:
            return
        if header.get("event") == "fsend":
            watch.end("deleted" if header.get("reason") == "deleted" else "stopped")
            return
        kind = header.get("type")
        if kind not in ("created", "modified", "deleted", "moved", "overflow"):
            return
        ts = header.get("ts")
        watch.put(
            FileWatchFrame(
                type=kind,
                path=header.get("path") or None,
                from_path=header.get("fromPath") or None,
                is_dir=bool(header.get("isDir")),
                timestamp=datetime.fromtimestamp(ts / 1000, UTC) if isinstance(ts, int | float) else None,
            )
        )

    async def _on_control(self, msg: Msg) -> None:
        watch_id = msg.subject.split(".")[-2]
        watch = self.watches.get(watch_id)
        try:
            control = FileWatchControl.model_validate_json(msg.data)
        except ValidationError:
            return
        if control.type == "keepalive":
            if watch is not None:
                watch.last_keepalive = time.monotonic()
            if msg.reply and watch is not None:
                with contextlib.suppress(nats.errors.Error):
                    await msg.respond(msg.data)
            return
        if watch is not None:
            await self._unwatch(watch, "closed")

    async def _unwatch(self, watch: FileWatch, reason: str) -> None:
        watch.end(reason)
        with contextlib.suppress(AgentError, AgentGone, OSError, TimeoutError):
            await watch.session.request("fsunwatch", {"watch": watch.watch_id}, reply_within=5)

    async def _check_idle(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            cutoff = time.monotonic() - IDLE_AFTER
            for watch in list(self.watches.values()):
                if watch.last_keepalive < cutoff:
                    self._spawn(self._unwatch(watch, "idle"))
