"""Delete or move a file of a paused runc sandbox: run by the orchestrator as a short-lived
process of its own (`python -m sbx_orchestrator.engine.frozen_helper <pid> <container> <json>`),
which prints one JSON answer.

Nothing can run inside a paused sandbox (Docker refuses an exec, the agent is frozen), and
Docker's archive API can add and overwrite files but not remove them. So this process enters the
sandbox's root itself: it checks that `pid` is still a process of the container (its cgroup
names the container's id), `chroot`s into `/proc/<pid>/root` (the container's root and mounts,
its volumes included) and does the change there with the same rules as the agent's `fdelete` and
`fmove` (`agent/files.go`). After the chroot every path, `..` and symlink resolves within the
sandbox's own root, as its kernel would resolve it; nothing of the sandbox is executed (every
module this needs is imported before the chroot), and the sandbox's processes are frozen for the
whole operation, so none of them can swap a path under it (a sandbox resumed meanwhile still
cannot lead it outside the root; `shutil.rmtree` does not follow symlinks). Once inside, the
import system is emptied, so no module can be loaded from the sandbox's files.

Needs what `chroot` needs (root, in the host's PID namespace); anything else answers
UNAVAILABLE and the orchestrator refuses with 409 as before.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import shutil
import stat
import sys
from typing import Any

PLATFORM_DIR = "/.sbx"


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(exc: OSError) -> Refused:
    table = {
        errno.ENOENT: ("NOT_FOUND", "No such file or directory."),
        errno.ENOTDIR: ("NOT_A_DIRECTORY", "A path component is not a directory."),
        errno.EISDIR: ("IS_A_DIRECTORY", "The path is a directory."),
        errno.ENOSPC: ("STORAGE_FULL", "The sandbox's disk or volume is full."),
        errno.EDQUOT: ("STORAGE_FULL", "The sandbox's disk or volume is full."),
        errno.ENOTEMPTY: ("CONFLICT", "The directory is not empty (pass recursive=true)."),
        errno.EEXIST: ("CONFLICT", "The path exists already."),
    }
    code, message = table.get(exc.errno or 0, ("CONFLICT", os.strerror(exc.errno or 0)))
    return Refused(code, message)


def _guard(path: str) -> None:
    """Refuse a change whose place resolves into the platform's directory (as the agent does)."""
    current = path
    while True:
        if os.path.lexists(current):
            resolved = os.path.realpath(current)
            if resolved == PLATFORM_DIR or resolved.startswith(PLATFORM_DIR + "/"):
                raise Refused("VALIDATION_ERROR", f"{PLATFORM_DIR} belongs to the platform and is read-only.")
            return
        if current == "/":
            return
        current = posixpath.dirname(current)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _entry(path: str) -> dict[str, Any]:
    info = os.lstat(path)
    return {"path": path, "mode": info.st_mode, "size": info.st_size, "mtime": int(info.st_mtime)}


def delete(path: str, recursive: bool) -> dict[str, Any]:
    os.lstat(path)
    _guard(posixpath.dirname(path))
    if _is_dir(path) and recursive:
        _guard(path)
        shutil.rmtree(path)
    elif _is_dir(path):
        os.rmdir(path)
    else:
        os.unlink(path)
    return {}


def move(source: str, target: str, overwrite: bool) -> dict[str, Any]:
    os.lstat(source)
    for place in (posixpath.dirname(source), posixpath.dirname(target)):
        _guard(place)
    if not stat.S_ISDIR(os.stat(posixpath.dirname(target)).st_mode):
        raise _error(OSError(errno.ENOTDIR, "not a directory"))
    if os.path.lexists(target):
        if not overwrite:
            raise _error(OSError(errno.EEXIST, "exists"))
        if _is_dir(target) != _is_dir(source):
            raise _error(OSError(errno.EISDIR if _is_dir(target) else errno.ENOTDIR, "kind"))
    os.rename(source, target)
    return {"entry": _entry(target)}


def _enter(pid: int, container_id: str) -> bool:
    """chroot into the root of `pid` if it is a process of the container; False if it is not.

    Through a descriptor of `/proc/<pid>`: once opened it names that process only (if it exits,
    reads through it fail), so a pid reused by another process between the check and the chroot
    cannot lead this process into that one's root."""
    proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)
    try:
        cgroup = os.open("cgroup", os.O_RDONLY, dir_fd=proc)
        try:
            belongs = container_id in os.read(cgroup, 1 << 16).decode("utf-8", "replace")
        finally:
            os.close(cgroup)
        if not belongs:
            return False
        root = os.open("root", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc)
        try:
            os.fchdir(root)
            os.chroot(".")
        finally:
            os.close(root)
        os.chdir("/")
        return True
    finally:
        os.close(proc)


def run(pid: int, container_id: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        if not _enter(pid, container_id):
            return {"code": "UNAVAILABLE", "message": "The sandbox's process is gone."}
        # From here every path is the sandbox's: nothing more may be imported (a module the
        # sandbox placed at the interpreter's library path would run as root).
        sys.meta_path.clear()
        sys.path_hooks.clear()
        sys.path_importer_cache.clear()
        sys.path.clear()
    except OSError as exc:
        return {"code": "UNAVAILABLE", "message": f"The sandbox's root cannot be entered: {exc.strerror}."}
    try:
        if request["op"] == "delete":
            return delete(str(request["path"]), bool(request.get("recursive")))
        return move(str(request["path"]), str(request["to"]), bool(request.get("overwrite")))
    except Refused as exc:
        return {"code": exc.code, "message": exc.message}
    except OSError as exc:
        refused = _error(exc)
        return {"code": refused.code, "message": refused.message}


if __name__ == "__main__":
    answer = run(int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))
    sys.stdout.write(json.dumps(answer))
