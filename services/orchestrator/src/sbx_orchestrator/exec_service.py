"""Exec: `sbx.rpc.exec` (core NATS request/reply, queue group "orchestrator").

An ExecRequest runs a command in a running sandbox through the Docker exec API and is answered
with an ExecResult: exit code, stdout and stderr apart (each capped, with a `truncated` flag),
duration, and `timedOut` when the command was killed for running past its timeout. The reply
must fit in one NATS message: with the server's default max_payload (1 MB) the output kept is
trimmed further to fit (raise max_payload to 8 MB to get the full 1 MiB per stream). Nothing ran
when `errorCode` is set: NOT_FOUND (no such sandbox for this owner), NOT_RUNNING,
VALIDATION_ERROR, UNAVAILABLE (Docker did not answer) or INTERNAL_ERROR.

The Docker API cannot kill an exec'd process. On a timeout the orchestrator kills it (and its
descendants) by the host PID Docker reports, after checking through /proc that the PID belongs
to the sandbox's container; when it may not signal them (it does not run as root), it kills them
by their in-container PIDs with another exec (`inside.run_inside`). Both need the orchestrator
in the host's PID namespace, to find the processes (the case under `make run`; compose:
`pid: host`; Kubernetes: `hostPID: true`). Elsewhere the call still returns at its timeout, and
the process is left to finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.utils.socket import frames_iter
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sbx_common import subjects, telemetry
from sbx_common.codes import RpcErrorCode
from sbx_common.logging import trace_id_var
from sbx_common.messages import ExecRequest, ExecResult
from sbx_common.status import Status

from sbx_orchestrator import inside
from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.metrics import DOCKER_ERRORS, EXEC_DURATION

logger = logging.getLogger(__name__)

QUEUE_GROUP = "orchestrator"
STDOUT, STDERR = 1, 2
KILL_GRACE = 2.0  # seconds the output may take to end after the process was killed


@dataclass
class Capture:
    """One output stream, kept up to `limit` bytes; the rest is read and dropped."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", errors="replace")


class ExecRun:
    """One exec, run in a worker thread; `kill` and `abort` may be called from another thread."""

    def __init__(self, api: docker.APIClient, container_id: str, request: ExecRequest, limit: int) -> None:
        self.api = api
        self.container_id = container_id
        self.request = request
        self.stdout = Capture(limit)
        self.stderr = Capture(limit)
        self.exec_id: str | None = None
        self.exit_code: int | None = None
        self._sock: Any = None
        self._aborted = False
        self._lock = threading.Lock()

    def run(self) -> None:
        request = self.request
        created = self.api.exec_create(
            self.container_id,
            request.command,
            stdout=True,
            stderr=True,
            environment=request.env or None,
            workdir=request.workdir or None,
        )
        self.exec_id = str(created["Id"])
        sock = self.api.exec_start(self.exec_id, socket=True)
        with self._lock:
            self._sock = sock
            aborted = self._aborted
        try:
            if not aborted:
                for stream, chunk in frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
                    (self.stderr if stream == STDERR else self.stdout).add(chunk)
        except OSError:
            if not self._aborted:
                raise
        finally:
            with suppress(OSError):
                sock.close()
        self.exit_code = inside.wait_exit_code(self.api, self.exec_id)

    def kill(self) -> bool:
        """Kill the exec'd process and its descendants; False if its PID is not visible here."""
        if self.exec_id is None:
            return False
        pid = int(self.api.exec_inspect(self.exec_id).get("Pid") or 0)
        if pid <= 0 or not inside.belongs_to(pid, self.container_id):
            return False
        denied = []
        for victim in [pid, *_descendants(pid)]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                continue
            except PermissionError:  # the orchestrator does not run as root: kill from inside
                denied.append(victim)
        if denied:
            return self._kill_inside([p for p in map(_namespace_pid, denied) if p])
        return True

    def _kill_inside(self, pids: list[int]) -> bool:
        """Kill processes by their PIDs inside the container, with another exec."""
        targets = [str(pid) for pid in pids]
        commands = (["kill", "-9", *targets], ["sh", "-c", f"kill -9 {' '.join(targets)}"])
        return inside.run_inside(self.api, self.container_id, commands)

    def abort(self) -> None:
        """Stop reading the output (unblocks `run`)."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            raw = getattr(sock, "_sock", sock)
            with suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)


def _namespace_pid(pid: int) -> int | None:
    """The PID of a host process as seen inside its container (the last `NSpid` entry)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


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


class ExecService:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.settings = context.settings
        self._executor = ThreadPoolExecutor(self.settings.exec_threads, thread_name_prefix="exec")
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._subscription = await self.context.nc.subscribe(
            subjects.RPC_EXEC, queue=QUEUE_GROUP, cb=self._on_request
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            with suppress(Exception):
                await self._subscription.unsubscribe()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _on_request(self, msg: Msg) -> None:
        # The subscription's callbacks run one after another: each request gets its own task.
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Msg) -> None:
        started = time.perf_counter()
        # Continues the trace of the API request that asked (headers).
        with telemetry.consumer_span("exec", msg.headers, kind=SpanKind.SERVER) as span:
            try:
                result = await self.execute(msg.data)
            except Exception:
                logger.exception("exec failed")
                result = _error("INTERNAL_ERROR", "the command could not be run")
            outcome = result.error_code or ("timeout" if result.timed_out else "ok")
            span.set_attribute("sbx.outcome", outcome)
        if msg.reply:
            try:
                await msg.respond(fit_reply(result, self.context.nc.max_payload).to_bytes())
            except Exception:
                logger.exception("could not send an exec reply")
        EXEC_DURATION.labels(outcome.lower()).observe(time.perf_counter() - started)

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
            return await self._run(target.container_id, request)
        finally:
            trace_id_var.reset(token)

    async def _run(self, container_id: str, request: ExecRequest) -> ExecResult:
        loop = asyncio.get_running_loop()
        timeout = min(max(request.timeout_seconds, 0.001), self.settings.exec_max_timeout)
        try:
            api = self.context.engine.api
        except docker.errors.DockerException:
            return _error("UNAVAILABLE", "the container engine did not answer")
        run = ExecRun(api, container_id, request, self.settings.exec_output_limit)
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
