"""One exec in a sandbox's container, run in a worker thread: its output captured (each stream
capped, the rest read and dropped), its exit code, and killing it with its descendants.

The Docker API cannot kill an exec'd process: `ExecRun.kill` kills it by the host PID Docker
reports, after checking through /proc that the PID belongs to the container, and kills by the
in-container PIDs with another exec (`in_container.run_inside`) what it may not signal itself.
Under gVisor the PID Docker reports is runsc's own exec process on the host, not the command:
there the exec carries a marker variable (`SBX_EXEC_ID`), and the processes (descendants
included) whose environment holds it are killed from inside.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.utils.socket import frames_iter
from sbx_common.messages import ExecRequest

from sbx_orchestrator.engine import in_container

STDOUT, STDERR = 1, 2
MARKER = "SBX_EXEC_ID"


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

    def __init__(
        self,
        api: docker.APIClient,
        container_id: str,
        request: ExecRequest,
        limit: int,
        marker: str | None = None,
    ) -> None:
        self.api = api
        self.marker = marker
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
        environment = dict(request.env or {})
        if self.marker is not None:
            environment[MARKER] = self.marker
        created = self.api.exec_create(
            self.container_id,
            request.command,
            stdout=True,
            stderr=True,
            environment=environment or None,
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
        self.exit_code = in_container.wait_exit_code(self.api, self.exec_id)

    def kill(self) -> bool:
        """Kill the exec'd process and its descendants; False if its PID is not visible here."""
        if self.exec_id is None:
            return False
        pid = int(self.api.exec_inspect(self.exec_id).get("Pid") or 0)
        if pid <= 0 or not in_container.belongs_to(pid, self.container_id):
            return self._kill_marked() if self.marker is not None else False
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
        return in_container.run_inside(self.api, self.container_id, commands)

    def _kill_marked(self) -> bool:
        """Kill, from inside, every process whose environment holds this exec's marker."""
        script = (
            f"for e in /proc/[0-9]*/environ; do"
            f" if grep -q '{MARKER}={self.marker}' \"$e\" 2>/dev/null; then p=${{e#/proc/}};"
            f' kill -9 "${{p%/environ}}" 2>/dev/null; fi; done; exit 0'
        )
        return in_container.run_inside(self.api, self.container_id, [["/bin/sh", "-c", script]])

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
