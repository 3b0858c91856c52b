"""`sbx-api`: run the API service with uvicorn, as SBX_API_WORKERS processes (default: one per
core) sharing one listening socket.

With one worker the app runs in this process. With several, uvicorn's supervisor starts the
workers (restarting any that dies) and each builds its app with `worker_app`; everything that must
hold across them lives in PostgreSQL (docs/architecture.md, "API worker processes"), and their
Prometheus samples go to a folder of this run's (`metrics.py`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sbx_api.config import ApiSettings

# Only the standard library at import time: each worker process starts by importing this module
# (multiprocessing's spawn) before it can answer the supervisor's health checks, which give it
# TIMEOUT_WORKER_HEALTHCHECK seconds; the app itself is imported afterwards, in `worker_app`.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # the same name as `sbx_api.metrics.MULTIPROC_DIR`
# How long the supervisor waits for a worker's answer before it restarts the worker (uvicorn's
# default is 5 s; a worker importing the app on a busy machine can take longer than that).
TIMEOUT_WORKER_HEALTHCHECK = 30


def worker_count(settings: ApiSettings) -> int:
    """SBX_API_WORKERS, or one per CPU this process may run on (its affinity mask: a container
    limited to some CPUs with `cpuset` counts those only)."""
    if settings.api_workers:
        return settings.api_workers
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this in each worker)."""
    from sbx_common.logging import configure_logging
    from sbx_common.telemetry import setup_telemetry

    from sbx_api.app import create_app
    from sbx_api.config import ApiSettings

    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    setup_telemetry("api")
    return create_app(settings)


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[None]:
    """PROMETHEUS_MULTIPROC_DIR for the workers: the operator's folder (emptied first, as the
    prometheus client requires) or a temporary one removed at the end."""
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="sbx-api-metrics-"))
    os.environ[MULTIPROC_DIR] = str(folder)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR, None)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    import uvicorn
    from sbx_common.logging import configure_logging
    from sbx_common.telemetry import setup_telemetry

    from sbx_api.app import create_app
    from sbx_api.config import ApiSettings

    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    proxies = settings.trusted_proxies.strip()
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        "ws_ping_interval": 20,
        "timeout_keep_alive": settings.api_keepalive_seconds,
        # Client messages past this size close the socket (1009) before they are buffered whole.
        "ws_max_size": settings.ws_max_message_bytes,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
    }
    workers = worker_count(settings)
    if workers == 1:
        setup_telemetry("api")
        uvicorn.run(create_app(settings), **options)
        return
    create_app(settings)  # bad settings fail here, once, rather than in every worker
    with shared_metrics_dir():
        uvicorn.run(
            "sbx_api.main:worker_app",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=TIMEOUT_WORKER_HEALTHCHECK,
            **options,
        )
