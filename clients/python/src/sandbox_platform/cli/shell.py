"""`sbx shell`: the local terminal joined to a shell in the sandbox.

The local terminal is put in raw mode (so Ctrl-C, Ctrl-D and every key go to the sandbox as
bytes), its size follows the window (SIGWINCH -> resize), and it is restored however the
session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator

from sandbox_platform._async_streams import AsyncTerminal
from sandbox_platform._core import ClientConfig
from sandbox_platform._sockets import NORMAL_CLOSURE
from sandbox_platform.errors import APIConnectionError

READ_SIZE = 65536
EOF_KEY = b"\x04"
DEFAULT_SIZE = (80, 24)


def window_size(fd: int) -> tuple[int, int]:
    """(cols, rows) of the terminal on `fd`, or 80x24 when it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return DEFAULT_SIZE
    return (size.columns or DEFAULT_SIZE[0], size.lines or DEFAULT_SIZE[1])


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Raw mode on `fd` for the block (nothing when it is not a terminal); always restored."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        # TCSADRAIN rather than setraw's default TCSAFLUSH: keys typed ahead are kept and sent.
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def run(config: ClientConfig, sandbox_id: str) -> int:
    """Join this terminal to a shell in the sandbox until the shell exits; the exit status."""
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    cols, rows = window_size(fd_out)
    terminal = await AsyncTerminal.open(config, sandbox_id, cols, rows)
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes | None] = asyncio.Queue()

    def on_input() -> None:
        try:
            data = os.read(fd_in, READ_SIZE)
        except OSError:
            data = b""
        if not data:
            # End of piped input: the shell gets an end of file (Ctrl-D) and the output is shown
            # until it exits. A terminal in raw mode never ends: Ctrl-D there is a key.
            loop.remove_reader(fd_in)
            data = EOF_KEY
        keys.put_nowait(data)

    def on_resize() -> None:
        keys.put_nowait(None)  # wakes the sender, which reads the new size

    async def send_keys() -> None:
        size = (cols, rows)
        while True:
            data = await keys.get()
            if data:
                await terminal.send(data)
                continue
            now = window_size(fd_out)
            if now != size:
                size = now
                await terminal.resize(*size)

    async def show_output() -> None:
        async for chunk in terminal:
            _write_all(fd_out, chunk)

    with raw_mode(fd_in):
        loop.add_reader(fd_in, on_input)
        loop.add_signal_handler(signal.SIGWINCH, on_resize)
        sender = asyncio.create_task(send_keys())
        try:
            await show_output()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            loop.remove_signal_handler(signal.SIGWINCH)
            loop.remove_reader(fd_in)
            await terminal.close()
    if terminal.close_code not in (None, NORMAL_CLOSURE):
        raise APIConnectionError(f"The terminal's connection was lost (close code {terminal.close_code}).")
    return 0
