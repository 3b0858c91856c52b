"""What both ways of reaching a sandbox's files share: the paths allowed, the entry, the errors.

Paths are absolute inside the sandbox, normalised lexically here ("..", ".", "//"); symlinks are
then resolved by whatever reads the filesystem from inside the container's own root (an exec in
the container, or Docker's archive API, which resolves them within the container's root), never
on the host. `/.sbx` is the platform's own (its agent, mounted read-only): writes there are
refused whatever path leads to it.
"""

from __future__ import annotations

import posixpath
import stat as stat_module
from datetime import UTC, datetime

from sbx_common.codes import RpcErrorCode
from sbx_common.messages import FileEntry, FileType

PLATFORM_DIR = "/.sbx"
MAX_PATH = 4096


class FileOpError(Exception):
    """A file operation refused or failed; `code` is the contract's."""

    def __init__(self, code: RpcErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: RpcErrorCode = code
        self.message = message


def normalise(path: str) -> str:
    """An absolute, lexically normalised path; VALIDATION_ERROR for anything else."""
    if not path or not path.startswith("/") or "\0" in path or len(path) > MAX_PATH:
        raise FileOpError("VALIDATION_ERROR", "The path must be absolute (start with /).")
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/")


def is_platform_path(path: str) -> bool:
    return path == PLATFORM_DIR or path.startswith(PLATFORM_DIR + "/")


def refuse_platform(path: str) -> None:
    if is_platform_path(path):
        raise FileOpError("VALIDATION_ERROR", f"{PLATFORM_DIR} belongs to the platform and is read-only.")


def refuse_root(path: str) -> None:
    if path == "/":
        raise FileOpError("VALIDATION_ERROR", "The root directory cannot be changed that way.")


def type_of_mode(mode: int) -> FileType:
    if stat_module.S_ISLNK(mode):
        return "symlink"
    if stat_module.S_ISDIR(mode):
        return "dir"
    if stat_module.S_ISREG(mode):
        return "file"
    return "other"


def make_entry(path: str, kind: FileType, size: int, permissions: int, mtime: float | None) -> FileEntry:
    return FileEntry(
        name=posixpath.basename(path) or "/",
        path=path,
        type=kind,
        size=size,
        mode=f"{permissions & 0o7777:04o}",
        modified_at=datetime.fromtimestamp(mtime, UTC) if mtime is not None else None,
    )
