"""Running the platform's services as separate processes (for `make run` and the tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sbx_devstack.servers import stop_process

# Console script of each service, installed by its package.
SERVICES: dict[str, str] = {
    "api": "sbx-api",
    "orchestrator": "sbx-orchestrator",
    "log-shipper": "sbx-log-shipper",
    "reaper": "sbx-reaper",
    "metrics-collector": "sbx-metrics-collector",
    "webhooks": "sbx-webhooks",
}

# Each worker service serves /metrics and /health on its own port (the API on its main port).
DEFAULT_METRICS_PORTS: dict[str, int] = {
    "orchestrator": 9101,
    "log-shipper": 9102,
    "reaper": 9103,
    "metrics-collector": 9104,
    "webhooks": 9105,
}


def service_command(name: str) -> list[str]:
    script = Path(sys.prefix) / "bin" / SERVICES[name]
    return [str(script)]


class ServiceProcess:
    """One service process; its output goes line by line to `sink` (and optionally a file)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        sink: Callable[[str, str], None] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.env = env
        self.sink = sink
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> ServiceProcess:
        self.process = subprocess.Popen(
            service_command(self.name),
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us in order
        )
        assert self.process.stdout is not None
        # Opened here, not in the pump thread, so a caller that stops us and removes the folder
        # right after never races the thread's open().
        out = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")
        self._pump = threading.Thread(target=self._copy_output, args=(self.process.stdout, out), daemon=True)
        self._pump.start()
        return self

    def _copy_output(self, stream: IO[bytes], out: IO[bytes] | None) -> None:
        try:
            for raw in iter(stream.readline, b""):
                if out is not None:
                    out.write(raw)
                    out.flush()
                if self.sink is not None:
                    self.sink(self.name, raw.decode(errors="replace").rstrip("\n"))
        finally:
            if out is not None:
                out.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        stop_process(self.process, signal.SIGTERM, timeout)
        # A multi-process service stops its workers itself; any it left behind end here.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self._pump is not None:
            self._pump.join(timeout=5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as in a crash: to the service's whole process group (its own session), so
        the worker processes of a multi-process service (the API) die with it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        self.process = None
