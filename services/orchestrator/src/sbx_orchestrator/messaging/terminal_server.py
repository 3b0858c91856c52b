"""Interactive terminals: a PTY shell in a sandbox, bridged to the API over NATS.

`sbx.rpc.terminal.open` (queue group "orchestrator") carries a TerminalOpenRequest. The owner
and the running status are checked, a shell is started through the Docker exec API with a TTY
(`bash` when the image has it, else `sh`; TERM=xterm-256color), and the reply says whether it
worked. From then on the session lives on three core NATS subjects:

- `sbx.term.<session>.in`: keystrokes, written to the PTY as they come (no batching);
- `sbx.term.<session>.out`: the PTY's output, published as it is read (at most 32 KiB a message);
- `sbx.term.<session>.ctl`: TerminalControl both ways: `resize` (exec_resize), `keepalive` and
  `close` from the API; `exit` from here when the shell ends (reason "exited", or "stopped" when
  the sandbox stopped), after the idle timeout ("idle": no input and no output), when the API
  stopped sending keepalives ("gone"), or on an error ("error"). A keepalive sent as a request
  is answered with a keepalive from here, so the API learns when this side is gone.

Closing a TTY exec's socket does not end its process: a session that ends while its shell runs
hangs the shell up as a terminal would, by host PID when the orchestrator can signal it, else
from inside the container with another exec (see `_end_shell`).

The exec socket is read and written from the event loop (non-blocking), so a session costs no
thread; only the Docker API calls themselves run in the engine's worker threads. Driven with
nats-py: a session's subscriptions come and go with it, and its screen output goes out as bare
bytes, without the headers FastStream would add to every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
import uuid
from typing import Any

import docker.errors
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Gauge
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.codes import RpcErrorCode, TerminalEndReason
from sbx_common.messages import TerminalControl, TerminalOpenReply, TerminalOpenRequest
from sbx_common.status import Status
from sbx_common.tasks import cancel_and_wait

from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.engine import in_container

logger = logging.getLogger(__name__)

QUEUE_GROUP = "orchestrator"
OUTPUT_CHUNK = 32 * 1024
WATCH_INTERVAL = 1.0
HANG_UP_GRACE = 2.0  # seconds a hung-up shell may take to end before it is killed
SHELL_ENV = {"TERM": "xterm-256color"}

SESSIONS = Gauge("orchestrator_terminal_sessions", "Open terminal sessions.")


def _refused(code: RpcErrorCode, message: str) -> TerminalOpenReply:
    """A reply saying no session was opened, and why."""
    return TerminalOpenReply(ok=False, error_code=code, error_message=message)


def _clamp(value: int | None, default: int) -> int:
    return min(max(value or default, 1), 1000)


class TerminalSession:
    """One shell: the exec socket pumped both ways until it ends, then an `exit` control."""

    def __init__(self, server: TerminalServer, request: TerminalOpenRequest, container_id: str) -> None:
        self.server = server
        self.context = server.context
        self.request = request
        self.container_id = container_id
        self.session_id = request.session_id
        self.exec_id = ""
        self._socket_io: Any = None  # keeps the SDK's socket wrapper (and its response) alive
        self._sock: socket.socket | None = None
        self._subscriptions: list[Subscription] = []
        self._last_activity = time.monotonic()
        self._last_keepalive = time.monotonic()
        self._end_reason: TerminalEndReason | None = None
        # Keystrokes and resizes arrive on two subjects, each handled by its own task: a
        # keystroke sent after a resize must reach the shell after the resize took effect
        # (e.g. `stty size` typed right after resizing the window).
        self._in_order = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Start the shell and subscribe to the session's subjects (before the reply is sent)."""
        engine, request = self.context.engine, self.request
        created = await engine.call(
            "exec_create",
            engine.api.exec_create,
            self.container_id,
            in_container.terminal_shell_command(self.session_id),
            stdin=True,
            tty=True,
            environment=SHELL_ENV,
        )
        self.exec_id = str(created["Id"])
        self._socket_io = await engine.call(
            "exec_start", engine.api.exec_start, self.exec_id, tty=True, socket=True
        )
        raw = getattr(self._socket_io, "_sock", self._socket_io)
        if not isinstance(raw, socket.socket):
            raise TypeError("the exec stream is not a socket")
        raw.setblocking(False)
        self._sock = raw
        await self._resize(_clamp(request.cols, 80), _clamp(request.rows, 24))
        nc = self.context.nc
        self._subscriptions = [
            await nc.subscribe(subjects.terminal_input(self.session_id), cb=self._on_input),
            await nc.subscribe(subjects.terminal_control(self.session_id), cb=self._on_control),
        ]
        self.task = asyncio.create_task(self._run(), name=f"terminal-{self.session_id}")

    async def _run(self) -> None:
        SESSIONS.inc()
        pump = asyncio.create_task(self._pump_output())
        watch = asyncio.create_task(self._watch())
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            reason = self._end_reason or await self._why_output_ended()
            if reason != "stopped":
                await self._end_shell()
            exit_code = await self._exit_code()
            await self._send_control(
                TerminalControl(type="exit", sender="orchestrator", exit_code=exit_code, reason=reason)
            )
            logger.info(
                "terminal closed",
                extra={
                    "sandboxId": str(self.request.sandbox_id),
                    "session": self.session_id,
                    "reason": reason,
                },
            )
        finally:
            await cancel_and_wait([pump, watch])
            await self.release()
            SESSIONS.dec()
            self.server.forget(self)

    async def _pump_output(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        out = subjects.terminal_output(self.session_id)
        while True:
            try:
                data = await loop.sock_recv(self._sock, OUTPUT_CHUNK)
            except OSError:
                return
            if not data:
                return
            self._last_activity = time.monotonic()
            with contextlib.suppress(nats.errors.Error):
                await self.context.nc.publish(out, data)

    async def _watch(self) -> None:
        """End the session when it is idle or its API side went away."""
        settings = self.context.settings
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            if now - self._last_activity > settings.terminal_idle_timeout:
                self._end_reason = "idle"
                return
            if now - self._last_keepalive > settings.terminal_keepalive_timeout:
                self._end_reason = "gone"
                return

    async def _on_input(self, msg: Msg) -> None:
        if self._sock is None or not msg.data:
            return
        self._last_activity = self._last_keepalive = time.monotonic()
        async with self._in_order:
            with contextlib.suppress(OSError):
                await asyncio.get_running_loop().sock_sendall(self._sock, msg.data)

    async def _on_control(self, msg: Msg) -> None:
        try:
            control = TerminalControl.model_validate_json(msg.data)
        except ValidationError:
            return
        if control.sender != "api":
            return
        self._last_keepalive = time.monotonic()
        if control.type == "keepalive" and msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(TerminalControl(type="keepalive", sender="orchestrator").to_bytes())
        elif control.type == "resize" and control.cols and control.rows:
            self._last_activity = self._last_keepalive
            async with self._in_order:
                with contextlib.suppress(docker.errors.APIError):
                    await self._resize(_clamp(control.cols, 80), _clamp(control.rows, 24))
        elif control.type == "close":
            self._end_reason = "closed"
            self._shutdown_socket()

    async def _resize(self, cols: int, rows: int) -> None:
        engine = self.context.engine
        await engine.call("exec_resize", engine.api.exec_resize, self.exec_id, height=rows, width=cols)

    async def _why_output_ended(self) -> TerminalEndReason:
        """The shell's output ended: because the shell exited, or because the sandbox stopped."""
        info = await self.context.engine.inspect(self.container_id)
        running = bool(info and info.get("State", {}).get("Running"))
        return "exited" if running else "stopped"

    async def _end_shell(self) -> None:
        """Closing the exec socket does not end a TTY exec: hang up its shell like a terminal
        would (SIGHUP to the session leader; the kernel passes it on to the foreground job, e.g.
        `vi`), then SIGKILL it if it is still there after HANG_UP_GRACE, so that a left shell
        does not hold on to the sandbox's pids limit. The host PID needs the orchestrator in the
        host's PID namespace and allowed to signal the shell; otherwise the hang-up is sent from
        inside the container, to the PID the shell recorded. Also when the shell already ended,
        to remove that record."""
        try:
            if await self._shell_pid():
                if not await self._signal_host(signal.SIGHUP):
                    await self._run_inside(in_container.terminal_hang_up_script(self.session_id))
                await self._shell_ended_within(HANG_UP_GRACE)
            await self._run_inside(in_container.terminal_end_script(self.session_id))
            if not await self._shell_ended_within(1.0):
                logger.warning(
                    "terminal shell left running",
                    extra={"sandboxId": str(self.request.sandbox_id), "session": self.session_id},
                )
        except Exception as exc:  # the exit control must go out whatever Docker does
            logger.warning("terminal hang-up failed", extra={"error": repr(exc)})

    async def _shell_pid(self) -> int:
        """The shell's host PID while it runs, else 0."""
        engine = self.context.engine
        try:
            info = await engine.call("exec_inspect", engine.api.exec_inspect, self.exec_id)
        except docker.errors.APIError:
            return 0
        return int(info.get("Pid") or 0) if info.get("Running") else 0

    async def _shell_ended_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while await self._shell_pid():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _signal_host(self, signum: int) -> bool:
        if not self.context.settings.terminal_host_signals:
            return False
        pid = await self._shell_pid()
        return in_container.signal_host_pid(pid, self.container_id, signum)

    async def _run_inside(self, script: str) -> bool:
        engine = self.context.engine
        command = [["/bin/sh", "-c", script]]
        return await engine.call("exec", in_container.run_inside, engine.api, self.container_id, command)

    async def _exit_code(self) -> int | None:
        engine = self.context.engine
        for _ in range(20):
            try:
                info = await engine.call("exec_inspect", engine.api.exec_inspect, self.exec_id)
            except docker.errors.APIError:
                return None
            if not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else None
            await asyncio.sleep(0.05)
        return None

    async def _send_control(self, control: TerminalControl) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.context.nc.publish(subjects.terminal_control(self.session_id), control.to_bytes())

    def _shutdown_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    async def release(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
        self._subscriptions = []
        self._shutdown_socket()
        if self._sock is not None:
            self._sock.close()
        if self._socket_io is not None:
            with contextlib.suppress(OSError):
                self._socket_io.close()
        self._sock = self._socket_io = None

    async def end(self) -> None:
        """Close from this side (the orchestrator is stopping)."""
        self._end_reason = "gone"
        self._shutdown_socket()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


class TerminalServer:
    """Answers `sbx.rpc.terminal.open` and keeps the open sessions."""

    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.sessions: dict[str, TerminalSession] = {}
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._subscription = await self.context.nc.subscribe(
            subjects.rpc(self.context.settings.host_id, subjects.RPC_TERMINAL_OPEN),
            queue=QUEUE_GROUP,
            cb=self._on_open,
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
        await asyncio.gather(*(s.end() for s in list(self.sessions.values())), return_exceptions=True)

    def forget(self, session: TerminalSession) -> None:
        self.sessions.pop(session.session_id, None)

    async def _on_open(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        reply = await self.open(msg.data)
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(reply.to_bytes())

    async def open(self, data: bytes) -> TerminalOpenReply:
        try:
            request = TerminalOpenRequest.model_validate_json(data)
            uuid.UUID(hex=request.session_id)
        except (ValidationError, ValueError):
            return _refused("VALIDATION_ERROR", "bad request")
        target = await self.context.repository.exec_target(request.sandbox_id)
        if target is None or target.owner_id != request.owner_id:
            return _refused("NOT_FOUND", "the sandbox was not found")
        if target.status is not Status.RUNNING or not target.container_id:
            return _refused("NOT_RUNNING", "the sandbox is not running")
        session = TerminalSession(self, request, target.container_id)
        self.sessions[session.session_id] = session
        try:
            await session.open()
        except docker.errors.APIError as exc:
            self.forget(session)
            await session.release()
            if exc.status_code in (404, 409):
                return _refused("NOT_RUNNING", "the sandbox is not running")
            logger.warning("terminal could not start", extra={"error": repr(exc)})
            return _refused("UNAVAILABLE", "the shell could not start")
        except Exception as exc:
            self.forget(session)
            await session.release()
            logger.warning("terminal could not start", extra={"error": repr(exc)})
            return _refused("UNAVAILABLE", "the shell could not start")
        logger.info(
            "terminal opened", extra={"sandboxId": str(request.sandbox_id), "session": request.session_id}
        )
        return TerminalOpenReply(ok=True)
