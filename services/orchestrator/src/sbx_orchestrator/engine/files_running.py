"""File operations on a running sandbox, done from inside it: short shell scripts run with the
Docker exec API (`sh`, `stat`, `find`, `cat`, `mv`: busybox or coreutils), paths passed as
arguments, never spliced into the script.

Working from inside is what makes a running gVisor sandbox correct: gVisor keeps its own cache
of the root filesystem, so a file Docker's archive API writes on the host is not seen inside
(measured: a file put with `put_archive` into a directory the sandbox had listed stayed
invisible, and an overwritten file kept its old contents inside). It also resolves every
symlink and `..` within the container's own root, as the sandbox itself sees its files.

An upload is written to a hidden temporary name beside its target and renamed over it only once
every byte arrived (a second exec), so a failed, full or abandoned upload never leaves a
half-written file at the target: the temporary file is removed instead.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator
from typing import Final

from sbx_common.codes import RpcErrorCode
from sbx_common.messages import FileEntry

from sbx_orchestrator.engine import files_common
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.engine.exec_stream import STDERR, ExecStream, run_script
from sbx_orchestrator.engine.files_common import FileOpError, make_entry, type_of_mode

# Raw mode (hex), size, permissions (octal), mtime, name.
_FORMAT = "%f|%s|%a|%Y|%n"
_PRELUDE = f"""
entry() {{ stat -c '{_FORMAT}' -- "$1"; }}
exists() {{ [ -e "$1" ] || [ -L "$1" ]; }}
isdir() {{ [ -d "$1" ] && [ ! -L "$1" ]; }}
guard() {{ a=$1; while ! r=$(readlink -f -- "$a" 2>/dev/null); do a=$(dirname -- "$a"); done
  case "$r" in {files_common.PLATFORM_DIR}|{files_common.PLATFORM_DIR}/*) exit 15;; esac; }}
"""
# Exit codes of the scripts below, and what they mean.
_CODES: Final[dict[int, tuple[RpcErrorCode, str]]] = {
    10: ("NOT_FOUND", "No such file or directory."),
    11: ("NOT_A_DIRECTORY", "A path component is not a directory."),
    12: ("IS_A_DIRECTORY", "The path is a directory."),
    13: ("CONFLICT", "The path exists already."),
    14: ("STORAGE_FULL", "The sandbox's disk or volume is full."),
    15: ("VALIDATION_ERROR", f"{files_common.PLATFORM_DIR} belongs to the platform and is read-only."),
    16: ("CONFLICT", "The directory is not empty (pass recursive=true)."),
    17: ("VALIDATION_ERROR", "An archive entry would be written through a symlink in the sandbox."),
}
# What a failed command printed, and the contract's code for it.
_STDERR_CODES: Final[tuple[tuple[str, RpcErrorCode], ...]] = (
    ("No space left", "STORAGE_FULL"),
    ("Disk quota exceeded", "STORAGE_FULL"),
    ("Not a directory", "NOT_A_DIRECTORY"),
    ("Is a directory", "IS_A_DIRECTORY"),
    ("No such file", "NOT_FOUND"),
    ("File exists", "NOT_A_DIRECTORY"),
    ("Read-only file system", "CONFLICT"),
    ("Permission denied", "CONFLICT"),
    ("not found", "UNAVAILABLE"),  # the image has no such command
)

_STAT = 'exists "$1" || exit 10; entry "$1"'
_STAT_FOLLOW = f"""[ -e "$1" ] || exit 10; stat -L -c '{_FORMAT}' -- "$1" """
_LIST = (
    'exists "$1" || exit 10; [ -d "$1" ] || exit 11; cd -- "$1" || exit 1;'
    f" find . -mindepth 1 -maxdepth 1 -exec stat -c '{_FORMAT}' {{}} +"
)
_MKDIR = """
if exists "$1"; then [ "$2" = 1 ] && isdir "$1" && { entry "$1"; exit 0; }; exit 13; fi
p=$(dirname -- "$1"); guard "$p"
if [ "$2" = 1 ]; then mkdir -p -- "$p" || exit 1; else exists "$p" || exit 10; [ -d "$p" ] || exit 11; fi
guard "$p"; mkdir -- "$1" || exit 1; entry "$1"
"""
_DELETE = """
exists "$1" || exit 10
guard "$(dirname -- "$1")"
if isdir "$1"; then
  guard "$1"
  if [ "$2" = 1 ]; then rm -rf -- "$1" || exit 1; else rmdir -- "$1" 2>/dev/null || exit 16; fi
else rm -f -- "$1" || exit 1; fi
"""
_MOVE = """
exists "$1" || exit 10
guard "$(dirname -- "$1")"; d=$(dirname -- "$2"); guard "$d"
[ -d "$d" ] || { exists "$d" && exit 11; exit 10; }
if exists "$2"; then
  [ "$3" = 1 ] || exit 13
  if isdir "$2"; then isdir "$1" || exit 12; rmdir -- "$2" 2>/dev/null || exit 16
  elif isdir "$1"; then exit 11; fi
fi
mv -f -- "$1" "$2" || exit 1; entry "$2"
"""
_READ = """
if [ "$2" = 0 ]; then
  if [ -z "$3" ]; then exec cat -- "$1"; else exec head -c "$3" -- "$1"; fi
fi
if [ -z "$3" ]; then exec tail -c "+$(($2 + 1))" -- "$1"; fi
tail -c "+$(($2 + 1))" -- "$1" | head -c "$3"
"""
# Upload, step 1: the parents made, the target checked, before any byte is sent.
_WRITE_PREPARE = """
d=$(dirname -- "$1"); guard "$d"; mkdir -p -- "$d" || exit 1; guard "$d"; [ -d "$1" ] && exit 12; exit 0
"""
# Step 2: stdin into the temporary file (removed if anything fails).
_WRITE_BODY = """
err=$(cat 2>&1 > "$1") || { rm -f -- "$1"; echo "$err" >&2; exit 1; }
"""
# Step 3: the temporary file renamed over the target once its size is what was sent.
_WRITE_COMMIT = """
s=$(stat -c %s -- "$1") && [ "$s" = "$4" ] || { rm -f -- "$1"; exit 1; }
if [ -n "$3" ]; then chmod "$3" "$1" || { rm -f -- "$1"; exit 1; }; fi
mv -f -- "$1" "$2" || { rm -f -- "$1"; exit 1; }
entry "$2"
"""
_WRITE_ABORT = 'rm -f -- "$1"'
# A tar of a file or tree: the path (a final symlink followed) as the archive's top entry.
_TAR_CREATE = """
exists "$1" || exit 10; r=$(readlink -f -- "$1") || exit 10
if [ "$r" = / ]; then cd / && exec tar -cf - .; fi
cd -- "$(dirname -- "$r")" && exec tar -cf - -- "$(basename -- "$r")"
"""
# Before extracting: the directory made, and no path the archive writes into already a symlink
# (read from stdin, one per line).
_TAR_PREPARE = """
guard "$1"; mkdir -p -- "$1" || exit 1; [ -d "$1" ] || exit 11; guard "$1"
while IFS= read -r p; do [ -L "$1/$p" ] && exit 17; done; exit 0
"""
_TAR_EXTRACT = 'cd -- "$1" || exit 1; tar -xf -'


def _error(code: int | None, stderr: bytes) -> FileOpError:
    if code in _CODES:
        return FileOpError(*_CODES[code])
    text = stderr.decode("utf-8", errors="replace").strip()
    for needle, mapped in _STDERR_CODES:
        if needle in text:
            return FileOpError(mapped, text.splitlines()[-1][:300] if text else needle)
    return FileOpError("VALIDATION_ERROR", (text.splitlines()[-1][:300] if text else "The operation failed."))


def _parse_entry(line: str, path: str | None = None, parent: str | None = None) -> FileEntry | None:
    parts = line.split("|", 4)
    if len(parts) != 5:
        return None
    raw_mode, size, _, mtime, name = parts
    try:
        mode = int(raw_mode, 16)
        if path is None:
            path = posixpath.join(parent or "/", posixpath.normpath(name))
        return make_entry(path, type_of_mode(mode), int(size), mode, float(mtime))
    except ValueError:
        return None


class RunningFiles:
    """The file operations of one running container."""

    def __init__(self, engine: DockerEngine, container_id: str) -> None:
        self.engine = engine
        self.container_id = container_id

    async def _run(self, script: str, *args: str) -> bytes:
        code, out, err = await run_script(self.engine, self.container_id, _PRELUDE + script, args)
        if code in {126, 127}:
            raise FileOpError("UNAVAILABLE", "The sandbox's image has no shell to reach its files.")
        if code != 0:
            raise _error(code, err)
        return out

    async def _entry(self, script: str, path: str, *args: str) -> FileEntry:
        out = await self._run(script, path, *args)
        entry = _parse_entry(out.decode("utf-8", errors="replace").strip(), path=path)
        if entry is None:
            raise FileOpError("UNAVAILABLE", "The sandbox's `stat` gave an unreadable answer.")
        return entry

    async def stat(self, path: str, follow: bool = False) -> FileEntry:
        return await self._entry(_STAT_FOLLOW if follow else _STAT, path)

    async def list_dir(self, path: str) -> list[FileEntry]:
        out = await self._run(_LIST, path)
        entries = [
            e
            for line in out.decode("utf-8", errors="replace").splitlines()
            if (e := _parse_entry(line, parent=path))
        ]
        return sorted(entries, key=lambda e: e.name)

    async def mkdir(self, path: str, parents: bool) -> FileEntry:
        return await self._entry(_MKDIR, path, "1" if parents else "0")

    async def delete(self, path: str, recursive: bool) -> None:
        await self._run(_DELETE, path, "1" if recursive else "0")

    async def move(self, source: str, target: str, overwrite: bool) -> FileEntry:
        out = await self._run(_MOVE, source, target, "1" if overwrite else "0")
        entry = _parse_entry(out.decode("utf-8", errors="replace").strip(), path=target)
        if entry is None:
            raise FileOpError("UNAVAILABLE", "The sandbox's `stat` gave an unreadable answer.")
        return entry

    async def _output(self, script: str, *args: str) -> AsyncIterator[bytes]:
        """A script's stdout as it is read; its failure (after any output) raises."""
        stream = ExecStream(self.engine, self.container_id)
        stderr = bytearray()
        try:
            await stream.start(["/bin/sh", "-c", _PRELUDE + script, "sbx", *args])
            async for kind, data in stream.frames():
                if kind == STDERR:
                    stderr += data[:4096]
                elif data:
                    yield data
            code = await stream.exit_code()
            if code not in (0, None):
                raise _error(code, bytes(stderr))
        finally:
            stream.close()

    def read(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes | bytearray]:
        """The file's bytes from `offset`, at most `length` of them, as they are read."""
        return self._output(_READ, path, str(offset), "" if length is None else str(length))

    def tar_read(self, path: str) -> AsyncIterator[bytes]:
        """A tar stream of the file or tree at `path`."""
        return self._output(_TAR_CREATE, path)

    async def _feed(self, script: str, args: list[str], chunks: AsyncIterator[bytes]) -> bytes:
        """Run a script with `chunks` on its stdin; its stdout, or its failure."""
        stream = ExecStream(self.engine, self.container_id)
        try:
            await stream.start(["/bin/sh", "-c", _PRELUDE + script, "sbx", *args], stdin=True)
            try:
                async for data in chunks:
                    await stream.write(data)
            except OSError:
                pass  # the command ended early: its answer says why
            stream.close_stdin()
            out, err = bytearray(), bytearray()
            async for kind, data in stream.frames():
                (err if kind == STDERR else out).extend(data[:65536])
            code = await stream.exit_code()
            if code != 0:
                raise _error(code, bytes(err))
            return bytes(out)
        finally:
            stream.close()

    async def tar_write(self, directory: str, prefixes: list[str], chunks: AsyncIterator[bytes]) -> None:
        """Extract a checked tar into `directory` (made if missing)."""

        async def lines() -> AsyncIterator[bytes]:
            for prefix in prefixes:
                yield prefix.encode() + b"\n"

        await self._feed(_TAR_PREPARE, [directory], lines())
        await self._feed(_TAR_EXTRACT, [directory], chunks)

    async def prepare_write(self, path: str) -> None:
        await self._run(_WRITE_PREPARE, path)

    def temporary_name(self, path: str, upload_id: str) -> str:
        return posixpath.join(posixpath.dirname(path), f".sbx-upload-{upload_id}")

    async def write(
        self, path: str, chunks: AsyncIterator[bytes], mode: int | None, upload_id: str
    ) -> FileEntry:
        """Write the bytes to a temporary name, then rename it over `path`; on any failure (or
        cancellation) the temporary file is removed and the target is as it was."""
        temporary = self.temporary_name(path, upload_id)
        stream = ExecStream(self.engine, self.container_id)
        written = 0
        try:
            await stream.start(["/bin/sh", "-c", _WRITE_BODY, "sbx", temporary], stdin=True)
            try:
                async for data in chunks:
                    await stream.write(data)
                    written += len(data)
            except OSError:
                pass  # the command ended early (e.g. the disk is full): its answer says why
            stream.close_stdin()
            stderr = bytearray()
            async for kind, data in stream.frames():
                if kind == STDERR:
                    stderr += data[:4096]
            code = await stream.exit_code()
            if code != 0:
                raise _error(code, bytes(stderr))  # noqa: TRY301 (the temporary file goes too)
        except BaseException:
            stream.close()
            await self._abort(temporary)
            raise
        stream.close()
        mode_text = "" if mode is None else f"{mode & 0o7777:o}"
        try:
            out = await self._run(_WRITE_COMMIT, temporary, path, mode_text, str(written))
        except FileOpError as exc:
            if exc.code == "VALIDATION_ERROR":
                raise FileOpError("UNAVAILABLE", "The upload could not be completed.") from exc
            raise
        entry = _parse_entry(out.decode("utf-8", errors="replace").strip(), path=path)
        if entry is None:
            raise FileOpError("UNAVAILABLE", "The sandbox's `stat` gave an unreadable answer.")
        return entry

    async def _abort(self, temporary: str) -> None:
        try:
            await run_script(self.engine, self.container_id, _WRITE_ABORT, [temporary])
        except Exception:  # the sandbox may be gone; its temporary file then goes with it
            return
