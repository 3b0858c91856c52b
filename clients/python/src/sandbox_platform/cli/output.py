"""How the CLI shows things: rich tables and spinners for people, the API's JSON with `--json`,
and one `error: CODE: message` line (with a hint for common cases) on failures."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sandbox_platform.errors import SandboxPlatformError
from sandbox_platform.models import Model

#: Tables and summaries for people (stdout).
out = Console(highlight=False, soft_wrap=True)
#: Spinners, notices and errors (stderr), so that stdout stays the command's own output.
err = Console(stderr=True, highlight=False, soft_wrap=True)

HINTS = {
    "UNAUTHORIZED": "log in with `sbx login` (or `sbx signup`), or set SBX_API_KEY",
    "NOT_RUNNING": "start it with `sbx start REF` (see `sbx show REF`)",
    "QUOTA_EXCEEDED": "destroy what you no longer need (`sbx ls` and `sbx rm REF`, `sbx env rm REF`)",
    "CONNECTION_ERROR": "is the API running? point SBX_API_URL (or `sbx login --api-url`) at it",
    "TIMEOUT": "the API did not answer in time; retry, or check that it is healthy",
    "INVALID_STATE": "see the sandbox's status with `sbx show REF`",
    "AMBIGUOUS": "use more characters of the id, or the full id",
    "CONFIG_ERROR": "fix or remove the file, then `sbx login` again",
}


def api_data(value: Any) -> Any:
    """The API's JSON of a model, a list of models, or plain data."""
    if isinstance(value, Model):
        return value.to_api()
    if isinstance(value, list | tuple):
        return [api_data(item) for item in value]
    return value


def print_json(value: Any) -> None:
    """Print the API's data as indented JSON."""
    sys.stdout.write(json.dumps(api_data(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    """Print one object as a line of JSON (for streams)."""
    sys.stdout.write(json.dumps(api_data(value), ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_error(error: SandboxPlatformError) -> None:
    """`error: CODE: message`, and a hint on the next line when one helps."""
    err.print(f"[bold red]error:[/] {escape(error.code)}: {escape(error.message)}")
    retry_after = getattr(error, "retry_after", None)
    hint = (
        f"retry in {retry_after:.0f} s"
        if error.code == "RATE_LIMITED" and retry_after
        else HINTS.get(error.code)
    )
    if hint:
        err.print(f"[dim]hint: {escape(hint)}[/]")


def fail(message: str) -> None:
    """An error of the CLI itself (not the API's), in the same one-line form."""
    err.print(f"[bold red]error:[/] {escape(message)}")


@contextlib.contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while a call waits (nothing when stderr is not a terminal)."""
    if not err.is_terminal:
        yield
        return
    with err.status(escape(message)):
        yield


def short(ident: str) -> str:
    """The first characters of an id, enough to tell ids apart in a table (and usable as a REF)."""
    return ident[:8]


def when(moment: datetime | None) -> str:
    """A timestamp in local time, to the second."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print rows under column headers."""
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(escape(str(cell)) for cell in row))
    out.print(grid)


def details(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print `name  value` pairs of one object."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(escape(name), escape(str(value)))
    out.print(grid)


def size(count: float) -> str:
    """Bytes for people (KiB, MiB, ...)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
