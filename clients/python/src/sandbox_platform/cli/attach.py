"""`sbx process attach` / `sbx process run`: the local terminal joined to a background process's
socket. Its output (from a seq on) is printed, stdin is sent to it, and for a process with a
terminal the local one is in raw mode and its size follows the window. Leaving (Ctrl-C without a
terminal, or the end of the input) leaves the process running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys

from sandbox_platform import _routes as routes
from sandbox_platform._async_streams import open_socket
from sandbox_platform._core import ClientConfig
from sandbox_platform.cli.shell import READ_SIZE, raw_mode, window_size


def write_output(stream: str, text: str) -> None:
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.write(text)
    target.flush()


async def run(
    config: ClientConfig, sandbox_id: str, process_id: str, *, since: int, tty: bool, send_input: bool
) -> int | None:
    """Follow the process until it ends (its exit code) or the input ends (None)."""
    socket = await open_socket(config, routes.process_socket_path(sandbox_id, process_id), {"since": since})
    loop = asyncio.get_running_loop()
    fd_in = sys.stdin.fileno()
    stdin_open = send_input
    outgoing: asyncio.Queue[bytes | str | None] = asyncio.Queue()

    def on_input() -> None:
        nonlocal stdin_open
        try:
            data = os.read(fd_in, READ_SIZE)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd_in)
            stdin_open = False
            outgoing.put_nowait(None)
            return
        outgoing.put_nowait(data)

    def on_resize() -> None:
        cols, rows = window_size(sys.stdout.fileno())
        outgoing.put_nowait(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def sender() -> None:
        while True:
            item = await outgoing.get()
            if item is None:
                return
            await socket.send(item)

    async def receiver() -> int | None:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") == "output":
                write_output(frame.get("stream", "stdout"), frame.get("text", ""))
            elif frame.get("type") == "exit":
                return int(frame.get("exitCode") or 0) if frame.get("status") == "exited" else 137
        return None

    with raw_mode(fd_in) if tty and send_input else contextlib.nullcontext():
        if send_input:
            loop.add_reader(fd_in, on_input)
        if tty:
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
            on_resize()
        sending = asyncio.create_task(sender())
        try:
            return await receiver()
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sending
            if tty:
                loop.remove_signal_handler(signal.SIGWINCH)
            if stdin_open:
                loop.remove_reader(fd_in)
            await socket.close()
