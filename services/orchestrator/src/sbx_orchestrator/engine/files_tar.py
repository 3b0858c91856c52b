"""Checking a tar that is to be extracted into a sandbox directory, before anything is written.

An upload's tar is spooled to a temporary file of the orchestrator (on disk, never in memory)
while its headers are read; only when every entry passed does extraction begin, so a bad entry
anywhere in the archive leaves the sandbox untouched. Refused (400):

- names that are absolute, hold `..` or NUL, or are empty;
- symlinks whose target is absolute or climbs out of the directory;
- hard links to anything but a regular file earlier in the same archive;
- entries whose path runs through a symlink of the archive ("symlink, then a file through it");
- devices, FIFOs and other special files.

Symlinks already in the sandbox along an entry's path are checked against the sandbox itself
just before extraction (`existing_prefixes`), since extraction would follow them.
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import IO

from sbx_orchestrator.engine.files_common import FileOpError

MAX_ENTRIES = 100_000


def _refuse(message: str) -> FileOpError:
    return FileOpError("VALIDATION_ERROR", message)


def clean_name(name: str) -> str:
    """An entry's name relative to the directory; refused when it could land outside it."""
    if "\0" in name or name.startswith("/"):
        raise _refuse(f"The archive entry {name!r} has an absolute name.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _refuse(f"The archive entry {name!r} climbs out of the directory.")
    return "/".join(parts)


@dataclass
class TarCheck:
    """The entries seen so far, and what extraction will need checked in the sandbox."""

    entries: int = 0
    files: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    directories: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)

    def add(self, info: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise _refuse(f"The archive holds more than {MAX_ENTRIES} entries.")
        name = clean_name(info.name)
        if not name:
            if info.isdir():
                return  # "./": the directory itself
            raise _refuse("An archive entry has an empty name.")
        parents = name.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            prefix = "/".join(parents[:depth])
            if prefix in self.links:
                raise _refuse(f"The archive entry {name!r} goes through the archive's symlink {prefix!r}.")
            self.prefixes.add(prefix)
        if info.isdir():
            self.directories.add(name)
        elif info.issym():
            target = info.linkname
            if not target or target.startswith("/") or "\0" in target:
                raise _refuse(f"The symlink {name!r} points outside the directory.")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if resolved == ".." or resolved.startswith("../"):
                raise _refuse(f"The symlink {name!r} points outside the directory.")
            self.links.add(name)
        elif info.islnk():
            target = clean_name(info.linkname)
            if target not in self.files:
                raise _refuse(f"The hard link {name!r} does not name a file of the archive.")
            self.files.add(name)
        elif info.isreg():
            self.files.add(name)
        else:
            raise _refuse(f"The archive entry {name!r} is a special file.")
        if name in self.links and name in self.directories:
            raise _refuse(f"The archive entry {name!r} is both a directory and a symlink.")

    def existing_prefixes(self) -> list[str]:
        """Every directory an entry is written into, and every directory entry: none may be a
        symlink in the sandbox already."""
        return sorted(self.prefixes | self.directories)


def check_spooled(spool: IO[bytes]) -> TarCheck:
    """Read every header of the spooled tar (skipping the data)."""
    check = TarCheck()
    spool.seek(0)
    try:
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            for info in tar:
                check.add(info)
    except tarfile.TarError as exc:
        raise _refuse(f"The body is not a readable tar archive ({exc}).") from None
    spool.seek(0)
    return check
