"""`sbx files ls|stat|cat|put|get|rm|mkdir|mv|watch` and `sbx cp SRC DST` (`REF:/path` on either side)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from sandbox_platform.cli import output, refs
from sandbox_platform.cli.output import print_json, when
from sandbox_platform.client import Client, Sandbox
from sandbox_platform.models import FileEntry

files_app = typer.Typer(help="Files of a sandbox (running, paused or stopped).", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print the API's data as JSON.")]
Ref = Annotated[str, typer.Argument(metavar="REF", help="A full id, a unique id prefix, or a name.")]
RemotePath = Annotated[str, typer.Argument(metavar="PATH", help="An absolute path inside the sandbox.")]
_COLUMNS = ["MODE", "SIZE", "MODIFIED", "NAME"]


def _client() -> Client:
    from sandbox_platform.cli.app import _client as make_client  # the app module imports this one

    return make_client()


def _sandbox(ref: str) -> Sandbox:
    return refs.sandbox(_client(), ref)


def _row(entry: FileEntry) -> list[Any]:
    name = entry.name + ("/" if entry.type == "dir" else "@" if entry.type == "symlink" else "")
    return [entry.mode, output.size(entry.size), when(entry.modified_at), name]


@files_app.command("ls")
def ls(ref: Ref, path: Annotated[str, typer.Argument(metavar="PATH")] = "/", json: Json = False) -> None:
    """List a directory."""
    entries = _sandbox(ref).files.list(path)
    if json:
        print_json(entries)
    else:
        output.table(_COLUMNS, [_row(e) for e in entries])


@files_app.command("stat")
def stat(ref: Ref, path: RemotePath, json: Json = False) -> None:
    """One path's entry."""
    entry = _sandbox(ref).files.stat(path)
    if json:
        print_json(entry)
    else:
        output.details(
            [("path", entry.path), ("type", entry.type), ("size", entry.size), ("mode", entry.mode)]
        )


@files_app.command("cat")
def cat(ref: Ref, path: RemotePath) -> None:
    """Print a file's bytes on stdout."""
    for data in _sandbox(ref).files.iter_bytes(path):
        sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@files_app.command("put")
def put(
    ref: Ref,
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="A local file, or - for stdin.")],
    path: RemotePath,
    mode: Annotated[str | None, typer.Option("--mode", help="Permission bits in octal, e.g. 0755.")] = None,
    json: Json = False,
) -> None:
    """Upload a local file (or stdin), streamed; parent directories are created."""
    files = _sandbox(ref).files
    result = files.write(path, sys.stdin.buffer, mode) if local == "-" else files.upload(local, path, mode)
    if json:
        print_json(result)
    else:
        output.out.print(f"{result.path} ({output.size(result.size)})")


@files_app.command("get")
def get(
    ref: Ref,
    path: RemotePath,
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="Where to save it (- for stdout).")],
) -> None:
    """Download a file, streamed to disk."""
    if local == "-":
        cat(ref, path)
        return
    written = _sandbox(ref).files.download(path, local)
    output.out.print(f"{local} ({output.size(written)})")


@files_app.command("rm")
def rm(
    ref: Ref,
    path: RemotePath,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="A directory and all in it.")] = False,
) -> None:
    """Delete a file, a symlink or a directory."""
    _sandbox(ref).files.remove(path, recursive=recursive)


@files_app.command("mkdir")
def mkdir(
    ref: Ref,
    path: RemotePath,
    parents: Annotated[bool, typer.Option("--parents", "-p", help="Create missing parents too.")] = False,
    json: Json = False,
) -> None:
    """Create a directory."""
    entry = _sandbox(ref).files.mkdir(path, parents=parents)
    if json:
        print_json(entry)


@files_app.command("mv")
def mv(
    ref: Ref,
    source: Annotated[str, typer.Argument(metavar="FROM")],
    target: Annotated[str, typer.Argument(metavar="TO")],
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace what is at TO.")] = False,
    json: Json = False,
) -> None:
    """Move or rename a file or directory."""
    entry = _sandbox(ref).files.move(source, target, overwrite=overwrite)
    if json:
        print_json(entry)


@files_app.command("tar")
def tar(
    ref: Ref,
    path: RemotePath,
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="The .tar to write (- for stdout).")],
) -> None:
    """Download a tar of a file or directory tree."""
    files = _sandbox(ref).files
    if local == "-":
        for data in files.iter_archive(path):
            sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    written = files.download_archive(path, local)
    output.out.print(f"{local} ({output.size(written)})")


@files_app.command("untar")
def untar(
    ref: Ref,
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="A .tar file, or - for stdin.")],
    path: Annotated[str, typer.Argument(metavar="DIR", help="The directory to extract into.")],
    json: Json = False,
) -> None:
    """Extract a local tar into a sandbox directory (refused whole if an entry would leave it)."""
    files = _sandbox(ref).files
    if local == "-":
        result = files.upload_archive(path, sys.stdin.buffer)
    else:
        with Path(local).open("rb") as source:
            result = files.upload_archive(path, source)
    if json:
        print_json(result)
    else:
        output.out.print(f"{result.path}: {result.entries} entries")


def _remote(spec: str) -> tuple[str, str] | None:
    """`REF:/path` -> (ref, path); a local path -> None."""
    ref, sep, path = spec.partition(":")
    if sep and path.startswith("/") and ref and "/" not in ref:
        return ref, path
    return None


def _progress_chunks(source: Path, progress: Progress) -> Iterator[bytes]:
    task = progress.add_task("upload", total=source.stat().st_size)
    with source.open("rb") as handle:
        while data := handle.read(1024 * 1024):
            progress.update(task, advance=len(data))
            yield data


def cp(
    source: Annotated[str, typer.Argument(metavar="SRC", help="A local path, or REF:/path.")],
    target: Annotated[str, typer.Argument(metavar="DST", help="A local path, or REF:/path.")],
) -> None:
    """Copy a file into or out of a sandbox, with a progress bar."""
    remote_source, remote_target = _remote(source), _remote(target)
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=output.err, transient=True) as progress:
        if remote_target and not remote_source:
            files = _sandbox(remote_target[0]).files
            local = Path(source)
            stream = _progress_chunks(local, progress)
            files.write(remote_target[1], stream, size=local.stat().st_size)
        elif remote_source and not remote_target:
            files = _sandbox(remote_source[0]).files
            size = files.stat(remote_source[1]).size
            task = progress.add_task("download", total=size)
            with Path(target).open("wb") as out:
                for data in files.iter_bytes(remote_source[1]):
                    out.write(data)
                    progress.update(task, advance=len(data))
        else:
            output.fail("One of SRC and DST must be REF:/path and the other a local path.")


@files_app.command("watch")
def watch(
    ref: Ref,
    path: RemotePath,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Everything under PATH too.")] = False,
    json: Json = False,
) -> None:
    """Print changes under a directory of a running sandbox as they happen (Ctrl-C to stop)."""
    with _sandbox(ref).files.watch(path, recursive=recursive) as changes:
        for change in changes:
            if json:
                print_json(change)
            elif change.type == "moved":
                typer.echo(f"moved\t{change.from_path} -> {change.path}")
            else:
                typer.echo(f"{change.type}\t{change.path or ''}")
