"""Background processes, from the orchestrator's side.

- `sbx.rpc.process` (queue group "orchestrator"): create, stdin, signal, resize. A create checks
  the sandbox (owner, running, made with the agent) and the owner's cap, records the process
  (`running`), asks the sandbox's agent to spawn it under the same id, and starts watching it.
- Output arrives as agent events on the sandbox's session. Each process has one writer task that
  stores its chunks in order (PostgreSQL first), publishes them on `sbx.proc.<sandbox>.<process>`
  (`Nats-Msg-Id` = `<process>:<seq>`), then acknowledges them to the agent, which frees room in
  the agent's buffer. So a chunk is acknowledged only once stored: a crash between the two makes
  the agent send it again, and the store keeps it once.
- A reconciler (every SBX_PROCESS_RECONCILE_INTERVAL s, and at start-up) makes sure every
  running process is watched by an open session, from the last seq stored: after an
  orchestrator restart, a resume, a broken session. A process the agent no longer knows (its
  container restarted), and those of sandboxes that stopped or went, become `killed`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import docker.errors
from faststream.nats.annotations import NatsMessage
from faststream.nats.subscriber.usecases import LogicSubscriber
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import RpcErrorCode
from sbx_common.messages import ProcessOutput, ProcessReply, ProcessRequest
from sbx_common.status import Status

from sbx_orchestrator.agent.session import AgentError, AgentGone, AgentSession
from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.processes.store import Chunk, ProcessStore

logger = logging.getLogger(__name__)

QUEUE_GROUP = "orchestrator"
MAX_BATCH = 256  # chunks stored in one statement
RETRY_SECONDS = 1.0  # a failed store is tried again after this long
AGENT_CALL_SECONDS = 10.0
# Ended processes whose output a sandbox keeps (as many as its list shows).
ENDED_KEPT = 100
# The sandbox statuses in which its processes cannot be running any more.
_GONE = frozenset({Status.STOPPED, Status.DESTROYED, Status.EXPIRED, Status.FAILED})
_DESTROYED = frozenset({Status.DESTROYED, Status.EXPIRED})


# One agent event: the session it came on, its header, its bytes.
Event = tuple[AgentSession, dict[str, Any], bytes]


def _error(code: RpcErrorCode, message: str, **details: Any) -> ProcessReply:
    return ProcessReply(error_code=code, error_message=message, details=details)


class ProcessManager:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.settings = context.settings
        self.store = ProcessStore(
            context.pool, self.settings.process_output_keep_bytes, self.settings.host_id
        )
        self._subscriber: LogicSubscriber[Any] | None = None
        self._queues: dict[uuid.UUID, asyncio.Queue[Event]] = {}
        self._writers: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._watched: dict[uuid.UUID, AgentSession] = {}  # process -> the session watching it
        self._sandbox_of: dict[uuid.UUID, uuid.UUID] = {}
        self._owner_locks: dict[uuid.UUID, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._reconciler: asyncio.Task[None] | None = None
        # Processes between their row and their first watch: the reconciler leaves them alone.
        self._creating: set[uuid.UUID] = set()
        # The newest seq acknowledged to the agent, per process.
        self._acked: dict[uuid.UUID, int] = {}

    async def start(self) -> None:
        self.context.agents.on_event = self._on_event
        self.context.lifecycle.on_sandbox_down.append(self.sandbox_down)
        self._subscriber = await self.context.broker.answer(
            subjects.rpc(self.settings.host_id, subjects.RPC_PROCESS),
            self._serve,
            queue=QUEUE_GROUP,
            max_workers=64,
        )
        self._reconciler = asyncio.create_task(self._reconcile_loop(), name="process-reconciler")

    async def stop(self) -> None:
        if self._subscriber is not None:
            await self._subscriber.stop()
        tasks = [t for t in [self._reconciler, *self._writers.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- requests ---

    async def _serve(self, message: NatsMessage) -> bytes:
        try:
            request = ProcessRequest.model_validate_json(message.body)
        except ValidationError:
            return _error("VALIDATION_ERROR", "the process request is not valid").to_bytes()
        try:
            reply = await self.handle(request)
        except Exception:
            logger.exception("process request failed", extra={"op": request.op})
            reply = _error("INTERNAL_ERROR", "the request could not be carried out")
        return reply.to_bytes()

    async def handle(self, request: ProcessRequest) -> ProcessReply:
        target = await self.context.repository.exec_target(request.sandbox_id)
        if target is None or target.owner_id != request.owner_id:
            return _error("NOT_FOUND", "the sandbox was not found")
        if request.op == "create":
            if target.status is not Status.RUNNING or not target.container_id:
                return _error("NOT_RUNNING", "the sandbox is not running")
            return await self._create(request, target.container_id)
        row = await self.store.get(request.process_id)
        if row is None or row["sandbox_id"] != request.sandbox_id:
            return _error("NOT_FOUND", "the process was not found")
        if row["status"] != "running":
            if request.op == "signal":
                return ProcessReply()  # nothing left to signal
            return _error("INVALID_STATE", "the process has ended")
        if request.op == "resize" and not row["tty"]:
            return _error("INVALID_STATE", "the process has no terminal (start it with tty)")
        if target.status is not Status.RUNNING or not target.container_id:
            return _error("NOT_RUNNING", "the sandbox is not running")
        args: dict[str, Any] = {"process": str(request.process_id)}
        payload = b""
        if request.op == "stdin":
            args["eof"] = request.eof
            payload = base64.b64decode(request.data)
        elif request.op == "signal":
            args["signal"] = request.signal
        else:
            args.update(cols=request.cols, rows=request.rows)
        try:
            session = await self.context.agents.session(request.sandbox_id, target.container_id)
            header, _ = await session.request(request.op, args, payload, reply_within=AGENT_CALL_SECONDS)
        except AgentError as exc:
            return self._agent_error(exc)
        except (AgentGone, TimeoutError, OSError, docker.errors.DockerException) as exc:
            logger.warning("process request to the agent failed", extra={"error": repr(exc)})
            return _error("UNAVAILABLE", "the sandbox's agent did not answer")
        return ProcessReply(written=int(header.get("written") or 0))

    def _agent_error(self, exc: AgentError) -> ProcessReply:
        if exc.code in ("VALIDATION_ERROR", "INVALID_STATE"):
            return _error(exc.code, exc.message[:300])  # type: ignore[arg-type]
        if exc.code == "NOT_FOUND":
            return _error("INVALID_STATE", "the process has ended")
        return _error("UNAVAILABLE", "the sandbox's agent failed the request")

    async def _create(self, request: ProcessRequest, container_id: str) -> ProcessReply:
        if not await self.context.agents.has_agent(container_id):
            return _error(
                "INVALID_STATE", "this sandbox was made before background processes: restart it to use them"
            )
        if not request.command or not request.command[0]:
            return _error("VALIDATION_ERROR", "the command must not be empty")
        self._creating.add(request.process_id)
        try:
            return await self._spawn(request, container_id)
        finally:
            self._creating.discard(request.process_id)

    async def _spawn(self, request: ProcessRequest, container_id: str) -> ProcessReply:
        limit = self.settings.max_processes_per_user
        async with self._owner_locks[request.owner_id]:
            existing = await self.store.get(request.process_id)
            if existing is None:
                current = await self.store.running_of_owner(request.owner_id)
                if current >= limit:
                    return _error(
                        "QUOTA_EXCEEDED",
                        f"At most {limit} running processes per user; {current} are running.",
                        resource="processes",
                        limit=limit,
                        current=current,
                    )
                await self.store.insert(
                    request.process_id, request.sandbox_id, request.owner_id, request.command, request.tty
                )
        args: dict[str, Any] = {
            "process": str(request.process_id),
            "argv": request.command,
            "env": request.env,
            "workdir": request.workdir or "",
            "tty": request.tty,
            "cols": request.cols,
            "rows": request.rows,
            "stdin": request.stdin or request.tty,
            "timeoutMs": round(request.timeout_seconds * 1000) if request.timeout_seconds else 0,
            "bufferBytes": self.settings.process_agent_buffer_bytes,
        }
        try:
            session = await self.context.agents.session(request.sandbox_id, container_id)
            header, _ = await session.request("spawn", args, reply_within=AGENT_CALL_SECONDS)
        except AgentError as exc:  # refused: nothing was started
            await self.store.delete(request.process_id)
            return self._agent_error(exc)
        except (
            AgentGone,
            TimeoutError,
            OSError,
            docker.errors.APIError,
            docker.errors.DockerException,
        ) as exc:
            logger.warning("process spawn failed", extra={"error": repr(exc)})
            # Not started, or started with nobody told: the reconciler finds it running either
            # way, and the agent (asked by the same id) reports what became of it.
            return _error("UNAVAILABLE", "the sandbox's agent did not answer")
        await self.store.set_pid(request.process_id, int(header.get("pid") or 0))
        try:
            await self._watch(session, request.sandbox_id, request.process_id, 0)
        except (AgentError, AgentGone, TimeoutError, OSError) as exc:
            # Started: the reconciler watches it from the store's last seq.
            logger.warning("a started process could not be watched yet", extra={"error": repr(exc)})
        return ProcessReply()

    # --- watching and storing output ---

    async def _watch(
        self, session: AgentSession, sandbox_id: uuid.UUID, process_id: uuid.UUID, since: int
    ) -> None:
        self._sandbox_of[process_id] = sandbox_id
        self._watched[process_id] = session
        try:
            await session.request(
                "watch", {"process": str(process_id), "since": since}, reply_within=AGENT_CALL_SECONDS
            )
        except AgentError as exc:
            self._watched.pop(process_id, None)
            if exc.code != "NOT_FOUND" or not await self._unknown_to(session, process_id):
                raise
            # The daemon restarted with its container: the process is gone.
            logger.info(
                "the agent no longer knows a running process",
                extra={"processId": str(process_id), "agentPid": session.daemon_pid},
            )
            await self._ended(process_id, "killed", None, None, False)
        except BaseException:
            self._watched.pop(process_id, None)
            raise

    async def _unknown_to(self, session: AgentSession, process_id: uuid.UUID) -> bool:
        """Whether the session's daemon really holds no such process (asked again with `list`)."""
        header, _ = await session.request("list", {}, reply_within=AGENT_CALL_SECONDS)
        known = {str(p.get("process")) for p in header.get("processes") or []}
        return str(process_id) not in known

    @staticmethod
    async def _call(session: AgentSession, op: str, process_id: uuid.UUID, **args: Any) -> dict[str, Any]:
        header, _ = await session.request(
            op, {"process": str(process_id), **args}, reply_within=AGENT_CALL_SECONDS
        )
        return header

    def _on_event(self, session: AgentSession, header: dict[str, Any], body: bytes) -> None:
        raw_id = header.get("process")
        if header.get("event") not in ("output", "exit") or not isinstance(raw_id, str):
            return
        process_id = uuid.UUID(raw_id)
        queue = self._queues.get(process_id)
        if queue is None:
            queue = self._queues[process_id] = asyncio.Queue()
        queue.put_nowait((session, header, body))
        writer = self._writers.get(process_id)
        if writer is None or writer.done():
            self._writers[process_id] = asyncio.create_task(self._write(process_id, queue))

    async def _write(
        self, process_id: uuid.UUID, queue: asyncio.Queue[tuple[AgentSession, dict[str, Any], bytes]]
    ) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            while True:
                try:
                    finished = await self._store_batch(process_id, batch)
                    break
                except (OSError, ConnectionError) as exc:
                    logger.warning("storing process output failed; retrying", extra={"error": repr(exc)})
                except Exception:
                    logger.exception("storing process output failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)
            if finished and queue.empty():
                self._queues.pop(process_id, None)
                self._writers.pop(process_id, None)
                return

    async def _store_batch(
        self, process_id: uuid.UUID, batch: list[tuple[AgentSession, dict[str, Any], bytes]]
    ) -> bool:
        """Store, publish and acknowledge one batch; True when it held the process's end."""
        outputs = [(s, h, b) for s, h, b in batch if h.get("event") == "output"]
        sandbox_id = self._sandbox_of.get(process_id)
        if sandbox_id is None:
            row = await self.store.get(process_id)
            if row is None:
                return True
            sandbox_id = self._sandbox_of[process_id] = row["sandbox_id"]
        if outputs:
            chunks = [
                Chunk(
                    seq=int(h["seq"]),
                    stream=str(h.get("stream") or "stdout"),
                    data=b,
                    ts=datetime.fromtimestamp(int(h.get("ts") or 0) / 1000, UTC),
                )
                for _, h, b in outputs
            ]
            await self.store.append(process_id, chunks)
            await self._publish_all(sandbox_id, process_id, chunks)
            session = outputs[-1][0]
            with contextlib.suppress(AgentGone, AgentError, TimeoutError, OSError):
                await session.request(
                    "ack",
                    {"process": str(process_id), "seq": chunks[-1].seq},
                    reply_within=AGENT_CALL_SECONDS,
                )
        for session, header, _ in batch:
            if header.get("event") == "exit":
                timed_out = bool(header.get("timedOut"))
                status = "killed" if timed_out else "exited"
                await self._ended(
                    process_id,
                    status,
                    int(header.get("exitCode") or 0),
                    header.get("signal") or None,
                    timed_out,
                )
                with contextlib.suppress(AgentGone, AgentError, TimeoutError, OSError):
                    await session.request(
                        "forget", {"process": str(process_id)}, reply_within=AGENT_CALL_SECONDS
                    )
                return True
        return False

    async def _publish_all(self, sandbox_id: uuid.UUID, process_id: uuid.UUID, chunks: list[Chunk]) -> None:
        subject = subjects.process_output(sandbox_id, process_id)
        stream_of = {"stdout": "stdout", "stderr": "stderr", "pty": "pty"}

        async def publish(chunk: Chunk) -> None:
            message = ProcessOutput(
                process_id=process_id,
                kind="output",
                seq=chunk.seq,
                stream=stream_of.get(chunk.stream, "stdout"),
                data=base64.b64encode(chunk.data).decode(),
                timestamp=chunk.ts,
            )
            await self.context.js.publish(
                subject, message.to_bytes(), headers={"Nats-Msg-Id": f"{process_id}:{chunk.seq}"}
            )

        try:
            await asyncio.gather(*(publish(c) for c in chunks))
        except Exception as exc:
            # Stored already: readers catch up from PostgreSQL.
            logger.warning("publishing process output failed", extra={"error": repr(exc)})

    async def _ended(
        self, process_id: uuid.UUID, status: str, exit_code: int | None, signal: str | None, timed_out: bool
    ) -> None:
        self._watched.pop(process_id, None)
        self._acked.pop(process_id, None)
        sandbox_id = self._sandbox_of.get(process_id)
        if await self.store.end(process_id, status, exit_code, signal, timed_out):
            logger.info(
                "process ended",
                extra={
                    "processId": str(process_id),
                    "status": status,
                    "exitCode": exit_code,
                    "signal": signal,
                },
            )
            await self._announce_end(process_id, status, exit_code, signal)
        if sandbox_id is not None:
            await self.store.prune(sandbox_id, ENDED_KEPT)

    async def _announce_end(
        self, process_id: uuid.UUID, status: str, exit_code: int | None, signal: str | None
    ) -> None:
        sandbox_id = self._sandbox_of.pop(process_id, None)
        if sandbox_id is None:
            row = await self.store.get(process_id)
            if row is None:
                return
            sandbox_id = row["sandbox_id"]
        message = ProcessOutput(
            process_id=process_id, kind="exit", status=status, exit_code=exit_code, signal=signal
        )
        try:
            await self.context.js.publish(
                subjects.process_output(sandbox_id, process_id),
                message.to_bytes(),
                headers={"Nats-Msg-Id": f"{process_id}:exit"},
            )
        except Exception as exc:
            logger.warning("publishing a process's end failed", extra={"error": repr(exc)})

    async def sandbox_down(self, sandbox_id: uuid.UUID, destroyed: bool = False) -> None:
        """The sandbox's container stopped or went: its running processes are `killed`; a
        destroyed sandbox's processes lose their output (deleted meanwhile: another table)."""
        purge = asyncio.create_task(self.store.purge_output(sandbox_id)) if destroyed else None
        try:
            for process_id in await self.store.kill_sandbox(sandbox_id):
                self._watched.pop(process_id, None)
                self._sandbox_of[process_id] = sandbox_id
                await self._announce_end(process_id, "killed", None, None)
        finally:
            if purge is not None:
                await purge

    # --- reconciling ---

    async def _ack_again(self, running: list[Any]) -> None:
        """Acknowledge again what is stored but was not acknowledged (an ack lost to a timeout
        would otherwise leave a process whose agent buffer is full waiting for ever)."""
        for process in running:
            session = self._watched.get(process.id)
            # What the store holds is always safe to acknowledge.
            if session is None or session.closed or process.last_seq <= self._acked.get(process.id, 0):
                continue
            with contextlib.suppress(AgentGone, AgentError, TimeoutError, OSError):
                await self._call(session, "ack", process.id, seq=process.last_seq)
                self._acked[process.id] = process.last_seq

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as exc:
                logger.warning("process reconciliation failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.process_reconcile_interval)

    async def reconcile(self) -> None:
        by_sandbox: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for process in await self.store.running():
            by_sandbox[process.sandbox_id].append(process)
        await self._ack_again([p for ps in by_sandbox.values() for p in ps])
        for sandbox_id, running in by_sandbox.items():
            unwatched = [p for p in running if (s := self._watched.get(p.id)) is None or s.closed]
            if not unwatched:
                continue
            target = await self.context.repository.exec_target(sandbox_id)
            if target is None or target.status in _GONE:
                await self.sandbox_down(sandbox_id, destroyed=target is None or target.status in _DESTROYED)
                continue
            if target.status is not Status.RUNNING or not target.container_id:
                continue  # paused, or between two states: later
            try:
                session = await self.context.agents.session(sandbox_id, target.container_id)
                for process in unwatched:
                    await self._watch(session, sandbox_id, process.id, process.last_seq)
            except (AgentGone, AgentError, TimeoutError, OSError, docker.errors.DockerException) as exc:
                logger.info("could not watch a sandbox's processes yet", extra={"error": repr(exc)})
