"""Reaching a sandbox's processes: by host PID when the orchestrator can, else from inside.

Signalling by host PID needs the orchestrator in the host's PID namespace and allowed to signal
the sandbox's user (root, or the same uid). Where it is not (compose or Kubernetes without the
host's PID namespace, or a non-root orchestrator), a short helper command run inside the
container with another exec does it, as the container's own user. A terminal session's shell
records its PID inside the container for that (the `terminal_*` scripts below).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import docker
import docker.errors

EXIT_CODE_WAIT = 1.0  # seconds Docker may take to record a finished exec's exit code


def belongs_to(pid: int, container_id: str) -> bool:
    """Whether a host PID is a process of that container (and not some process of ours: in
    another PID namespace the same number names something else)."""
    try:
        return container_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def signal_host_pid(pid: int, container_id: str, signum: int) -> bool:
    """Signal a sandbox process by its host PID; False when it is not visible or not ours to signal."""
    if pid <= 0 or not belongs_to(pid, container_id):
        return False
    try:
        os.kill(pid, signum)
    except OSError:
        return False
    return True


def wait_exit_code(api: docker.APIClient, exec_id: str, timeout: float = EXIT_CODE_WAIT) -> int | None:
    """The exit code of an exec, once it has one; None if it still runs after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            code = info.get("ExitCode")
            return int(code) if code is not None else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)


def run_inside(api: docker.APIClient, container_id: str, commands: Sequence[Sequence[str]]) -> bool:
    """Run the first of `commands` the image has, inside the container; False if none ran.

    Each must finish within EXIT_CODE_WAIT. Exit codes 126/127 mean the image has no such
    command, so the next one is tried; any other code means it ran (a `kill` of a process that
    is already gone fails, which is fine).
    """
    for command in commands:
        try:
            exec_id = api.exec_create(container_id, list(command), stdout=False, stderr=False)["Id"]
            api.exec_start(exec_id)
            if wait_exit_code(api, exec_id) not in (None, 126, 127):
                return True
        except docker.errors.APIError:
            continue
    return False


# --- the shell of a terminal session, and ending it from inside ---


def terminal_pid_file(session_id: str) -> str:
    """Where the session's shell records its PID inside the container: Docker gives every
    container a /dev/shm (a scratch image may have no /tmp), writable by any user and emptied
    when the container stops. Written and read only as the sandbox's own user, so whatever is
    found there can harm nothing the user could not."""
    return f"/dev/shm/.sbx-terminal-{uuid.UUID(hex=session_id).hex}"  # noqa: S108


def terminal_shell_command(session_id: str) -> list[str]:
    """`bash` when the image has it, else `sh`; exec replaces the wrapper, so the shell is the
    process Docker reports and the PID it records (`$$`) is the shell's, in the container's
    PID namespace, where the hang-up from inside finds it."""
    record = f"{{ echo $$ > {terminal_pid_file(session_id)}; }} 2>/dev/null"
    choose = "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"
    return ["/bin/sh", "-c", f"{record}; {choose}"]


def terminal_hang_up_script(session_id: str) -> str:
    """SIGHUP to every process of the shell's session (the shell leads it, as a hang-up of its
    terminal would reach them), then to its process group or the shell alone. gVisor passes
    neither a group signal nor the hang-up of an ended session leader on to the foreground job,
    so the session's members are found in /proc and signalled one by one. PID 1 and below
    never: `-1` is everyone."""
    path = terminal_pid_file(session_id)
    members = (
        "for stat in /proc/[0-9]*/stat; do"
        ' line=$(cat "$stat" 2>/dev/null) || continue; set -- ${line##*) };'
        ' if [ "$4" = "$pid" ]; then p=${stat#/proc/}; kill -HUP "${p%/stat}" 2>/dev/null; fi;'
        " done"
    )
    return (
        f'read pid < {path} && [ "$pid" -gt 1 ] && {{ {members};'
        ' kill -HUP -"$pid" 2>/dev/null || kill -HUP "$pid"; }'
    )


def terminal_end_script(session_id: str) -> str:
    """SIGKILL to a shell that outlived its hang-up, and the PID file removed."""
    path = terminal_pid_file(session_id)
    return (
        f"read pid < {path} || exit 0; rm -f {path}; "
        '[ "$pid" -gt 1 ] 2>/dev/null || exit 0; '
        'if kill -0 "$pid" 2>/dev/null; then kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid"; fi; '
        "exit 0"
    )
