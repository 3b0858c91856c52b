"""Helpers of the Python client tests: unique emails, waiting on conditions, a TCP proxy whose
connections the tests can cut to drop a client's sockets mid-stream, and a pseudo-terminal to
drive `sbx shell` as a person would."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}@example.com"


def wait_until(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call `probe` until it returns a truthy value (exceptions count as not yet); that value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the API; `drop()` cuts every open connection at once."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self.accepted += 1
                self._pairs.append((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> int:
        """Cut every connection open now, as a network failure would; how many were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.drop()


class Pty:
    """A program run on a pseudo-terminal, driven as a person at a terminal would: keys in,
    screen bytes out, window resizes."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24) -> None:
        self.master, slave = os.openpty()
        self._set_size(slave, cols, rows)
        self.cooked = termios.tcgetattr(slave)
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.output = b""
        self._seen = 0  # output before this offset was already matched

    @staticmethod
    def _set_size(fd: int, cols: int, rows: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, cols: int, rows: int) -> None:
        """Resize the window: the new size on the terminal, then SIGWINCH to the program."""
        self._set_size(self.master, cols, rows)
        self.proc.send_signal(signal.SIGWINCH)

    def send(self, data: str | bytes) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the program ended and closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def expect(self, marker: str | bytes, timeout: float = 15.0) -> bytes:
        """Wait until `marker` appears in output not matched before; the output up to it."""
        wanted = marker.encode() if isinstance(marker, str) else marker
        deadline = time.monotonic() + timeout
        while (found := self.output.find(wanted, self._seen)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(min(remaining, 0.5)):
                tail = self.output[self._seen :][-500:]
                raise AssertionError(f"{wanted!r} did not appear within {timeout} s; last output: {tail!r}")
        start, self._seen = self._seen, found + len(wanted)
        return self.output[start : self._seen]

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)  # keep draining, so the program never blocks on a full terminal
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))

    def terminal_modes(self) -> list[object]:
        return termios.tcgetattr(self.master)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
