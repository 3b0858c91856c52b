"""Exec: `sbx.rpc.exec` (core NATS request/reply, queue group "orchestrator"), a FastStream
core subscriber taking up to SBX_EXEC_MAX_REQUESTS requests at once. Commands run on the exec
pool (SBX_EXEC_THREADS), shared fairly between users by `exec_scheduler.FairScheduler`: a user
runs at most SBX_EXEC_THREADS_PER_USER at once, the rest wait in that user's own queue, and a
command's timeout starts when it starts, not when it was queued. A request that cannot start
within SBX_EXEC_QUEUE_TIMEOUT, or finds its user's queue full, is answered UNAVAILABLE.

An ExecRequest runs a command in a running sandbox through the Docker exec API and is answered
with an ExecResult: exit code, stdout and stderr apart (each capped, with a `truncated` flag),
duration, and `timedOut` when the command was killed for running past its timeout. The reply
must fit in one NATS message: with the server's default max_payload (1 MB) the output kept is
trimmed further to fit (raise max_payload to 8 MB to get the full 1 MiB per stream). Nothing ran
when `errorCode` is set: NOT_FOUND (no such sandbox for this owner), NOT_RUNNING,
VALIDATION_ERROR, UNAVAILABLE (Docker did not answer) or INTERNAL_ERROR.

In a sandbox made with the in-sandbox agent (docs/agent.md) the command goes to the agent over
the sandbox's persistent session (`agent.pool`): the agent runs it, caps its output, and on the
timeout kills its process group itself. Containers made before the agent take the Docker path:

The command itself runs in a worker thread (`engine.exec_run.ExecRun`). The Docker API cannot
kill an exec'd process: on a timeout the orchestrator kills it (and its descendants) by the host
PID Docker reports, after checking through /proc that the PID belongs to the sandbox's container;
when it may not signal them (it does not run as root), it kills them by their in-container PIDs
with another exec (`in_container.run_inside`). Both need the orchestrator in the host's PID
namespace, to find the processes (the case under `make run`; compose: `pid: host`; Kubernetes:
`hostPID: true`). Elsewhere the call still returns at its timeout, and the process is left to
finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import docker
import docker.errors
from faststream.nats.annotations import NatsMessage
from faststream.nats.subscriber.usecases import LogicSubscriber
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sbx_common import subjects, telemetry
from sbx_common.codes import RpcErrorCode
from sbx_common.logging import trace_id_var
from sbx_common.messages import ExecRequest, ExecResult
from sbx_common.status import Status

from sbx_orchestrator.agent.session import AgentError, AgentGone
from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.engine.exec_run import ExecRun
from sbx_orchestrator.messaging.exec_scheduler import FairScheduler, QueueFull
from sbx_orchestrator.metrics import DOCKER_ERRORS, EXEC_DURATION

logger = logging.getLogger(__name__)

QUEUE_GROUP = "orchestrator"
KILL_GRACE = 2.0  # seconds the output may take to end after the process was killed
# FastStream sends a reply with its own headers (`content-type`, `correlation_id`: some 80
# bytes), and the server counts headers and body against max_payload: a reply over it would
# cost the orchestrator its connection.
REPLY_HEADERS_ROOM = 256
AGENT_REPLY_MARGIN = 10.0  # seconds past a command's timeout before its agent is given up on


def _encoded_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _cut(text: str, budget: int) -> str:
    """The longest start of `text` whose JSON encoding takes at most `budget` bytes."""
    size = _encoded_size(text)
    if size <= budget:
        return text
    keep = int(len(text) * budget / size)
    while keep > 0 and _encoded_size(text[:keep]) > budget:
        keep = int(keep * 0.95)
    return text[: max(keep, 0)]


def fit_reply(result: ExecResult, max_payload: int) -> ExecResult:
    """Trim the output so that the reply fits in one NATS message (the server's max_payload).

    Each stream keeps at least half of the room when both are large; a short one leaves the
    rest to the other. Trimmed streams are flagged as truncated.
    """
    if len(result.to_bytes()) <= max_payload:
        return result
    overhead = len(result.model_copy(update={"stdout": "", "stderr": ""}).to_bytes())
    room = max(max_payload - overhead - 64, 0)
    stdout_size, stderr_size = _encoded_size(result.stdout), _encoded_size(result.stderr)
    stdout_room = room - min(stderr_size, room // 2)
    stderr_room = room - min(stdout_size, stdout_room)
    stdout, stderr = _cut(result.stdout, stdout_room), _cut(result.stderr, stderr_room)
    return result.model_copy(
        update={
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": result.stdout_truncated or stdout != result.stdout,
            "stderr_truncated": result.stderr_truncated or stderr != result.stderr,
        }
    )


def _error(code: RpcErrorCode, message: str) -> ExecResult:
    """A reply saying nothing ran, and why."""
    return ExecResult(error_code=code, error_message=message)


class ExecResponder:
    """Answers `sbx.rpc.exec`; the commands run on the exec pool."""

    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.settings = context.settings
        self._executor = ThreadPoolExecutor(self.settings.exec_threads, thread_name_prefix="exec")
        self.scheduler = FairScheduler(
            self.settings.exec_threads, self.settings.exec_threads_per_user, self.settings.exec_queue_per_user
        )
        self._subscriber: LogicSubscriber[Any] | None = None

    async def start(self) -> None:
        # More requests are taken than the pool runs, so that one user's waiting commands never
        # keep another user's request from being read.
        workers = max(self.settings.exec_max_requests, self.settings.exec_threads)
        self._subscriber = await self.context.broker.answer(
            subjects.rpc(self.settings.host_id, subjects.RPC_EXEC),
            self._serve,
            queue=QUEUE_GROUP,
            max_workers=workers,
        )

    async def stop(self) -> None:
        if self._subscriber is not None:
            # Requests under way get up to `shutdown_timeout` (the broker's graceful timeout).
            await self._subscriber.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _serve(self, message: NatsMessage) -> bytes:
        """One request: the reply, cut to fit in one NATS message."""
        started = time.perf_counter()
        # Continues the trace of the API request that asked (headers).
        with telemetry.consumer_span("exec", message.headers, kind=SpanKind.SERVER) as span:
            try:
                result = await self.execute(message.body)
            except Exception:
                logger.exception("exec failed")
                result = _error("INTERNAL_ERROR", "the command could not be run")
            outcome = result.error_code or ("timeout" if result.timed_out else "ok")
            span.set_attribute("sbx.outcome", outcome)
        EXEC_DURATION.labels(outcome.lower()).observe(time.perf_counter() - started)
        return fit_reply(result, self.context.nc.max_payload - REPLY_HEADERS_ROOM).to_bytes()

    async def execute(self, data: bytes) -> ExecResult:
        try:
            request = ExecRequest.model_validate_json(data)
        except ValidationError:
            return _error("VALIDATION_ERROR", "the exec request is not valid")
        if not request.command:
            return _error("VALIDATION_ERROR", "the command must not be empty")
        token = trace_id_var.set(request.trace_id)
        try:
            target = await self.context.repository.exec_target(request.sandbox_id)
            if target is None or target.owner_id != request.owner_id:
                return _error("NOT_FOUND", "the sandbox was not found")
            if target.status is not Status.RUNNING or not target.container_id:
                return _error("NOT_RUNNING", "the sandbox is not running")
            try:
                slot = await self.scheduler.acquire(request.owner_id, self.settings.exec_queue_timeout)
            except QueueFull:
                return _error("UNAVAILABLE", "too many of this user's commands are waiting")
            except TimeoutError:
                return _error("UNAVAILABLE", "the command could not start in time")
            with slot:
                return await self._run(target.container_id, request)
        finally:
            trace_id_var.reset(token)

    async def _run(self, container_id: str, request: ExecRequest) -> ExecResult:
        loop = asyncio.get_running_loop()
        timeout = min(max(request.timeout_seconds, 0.001), self.settings.exec_max_timeout)
        try:
            with_agent = await self.context.agents.has_agent(container_id)
        except docker.errors.DockerException:
            return _error("UNAVAILABLE", "the container engine did not answer")
        if with_agent:
            return await self._run_with_agent(container_id, request, timeout)
        try:
            api = self.context.engine.api
        except docker.errors.DockerException:
            return _error("UNAVAILABLE", "the container engine did not answer")
        # Under gVisor the exec's host PID is runsc's, not the command's: mark it to find it inside.
        marker = uuid.uuid4().hex if await self.context.engine.runs_gvisor(container_id) else None
        run = ExecRun(api, container_id, request, self.settings.exec_output_limit, marker)
        started = time.perf_counter()
        future = loop.run_in_executor(self._executor, run.run)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            timed_out = True
            await self._kill(run, future)
        except docker.errors.APIError as exc:
            return self._docker_error(exc)
        except Exception as exc:
            DOCKER_ERRORS.labels("exec").inc()
            logger.warning("exec failed", extra={"error": repr(exc)})
            return _error("UNAVAILABLE", "the container engine did not answer")
        return ExecResult(
            exit_code=run.exit_code,
            stdout=run.stdout.text(),
            stderr=run.stderr.text(),
            stdout_truncated=run.stdout.truncated,
            stderr_truncated=run.stderr.truncated,
            duration_ms=round((time.perf_counter() - started) * 1000),
            timed_out=timed_out,
        )

    async def _run_with_agent(self, container_id: str, request: ExecRequest, limit: float) -> ExecResult:
        started = time.perf_counter()
        args = {
            "argv": request.command,
            "env": request.env or {},
            "workdir": request.workdir or "",
            "timeoutMs": max(round(limit * 1000), 1),
            "limit": self.settings.exec_output_limit,
        }
        try:
            session = await self.context.agents.session(request.sandbox_id, container_id)
            # The agent answers at the timeout; the margin covers a session lost meanwhile.
            header, payload = await session.request("exec", args, reply_within=limit + AGENT_REPLY_MARGIN)
        except docker.errors.APIError as exc:
            return self._docker_error(exc)
        except AgentError as exc:
            code = exc.code if exc.code in ("VALIDATION_ERROR", "NOT_FOUND") else "INTERNAL_ERROR"
            return _error(code, exc.message[:300])  # type: ignore[arg-type]
        except (AgentGone, TimeoutError, docker.errors.DockerException, OSError) as exc:
            # The sandbox stopped or paused under the command (its session closed with it).
            target = await self.context.repository.exec_target(request.sandbox_id)
            if target is None or target.status is not Status.RUNNING:
                return _error("NOT_RUNNING", "the sandbox is not running")
            logger.warning("exec through the agent failed", extra={"error": repr(exc)})
            return _error("UNAVAILABLE", "the sandbox's agent did not answer")
        split = int(header.get("stdoutSize") or 0)
        return ExecResult(
            exit_code=int(header["exitCode"]),
            stdout=payload[:split].decode("utf-8", errors="replace"),
            stderr=payload[split:].decode("utf-8", errors="replace"),
            stdout_truncated=bool(header.get("stdoutTruncated")),
            stderr_truncated=bool(header.get("stderrTruncated")),
            duration_ms=round((time.perf_counter() - started) * 1000),
            timed_out=bool(header.get("timedOut")),
        )

    async def _kill(self, run: ExecRun, future: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Not on the exec pool: it may be full of long-running execs.
            killed = await loop.run_in_executor(None, run.kill)
        except Exception as exc:
            logger.warning("could not kill a timed-out exec", extra={"error": repr(exc)})
            killed = False
        if not killed:
            logger.warning("timed-out exec left running: its process is not visible to the orchestrator")
            run.abort()
        try:
            await asyncio.wait_for(asyncio.shield(future), KILL_GRACE)
        except TimeoutError:
            run.abort()  # e.g. a daemonised grandchild still holds the output open
        with suppress(Exception):
            await asyncio.wait_for(future, KILL_GRACE)

    def _docker_error(self, exc: docker.errors.APIError) -> ExecResult:
        if exc.status_code in (404, 409):  # the container is gone or not running
            return _error("NOT_RUNNING", "the sandbox is not running")
        DOCKER_ERRORS.labels("exec").inc()
        if exc.status_code is not None and 400 <= exc.status_code < 500:
            return _error("VALIDATION_ERROR", str(exc.explanation or "the command could not be run")[:300])
        logger.warning("exec failed", extra={"error": repr(exc)})
        return _error("UNAVAILABLE", "the container engine did not answer")
