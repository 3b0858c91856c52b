"""The process frame of a worker service: logging, NATS, ops server, signals, clean stop.

A service provides a `Worker` (start/stop coroutines plus its readiness checks); `run_worker`
does the rest, so every worker starts and stops the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Protocol

from nats.aio.client import Client as NatsClient

from sbx_common import natsconn
from sbx_common.logging import configure_logging
from sbx_common.opsserver import OpsServer
from sbx_common.settings import CommonSettings
from sbx_common.telemetry import setup_telemetry

logger = logging.getLogger(__name__)


class Worker(Protocol):
    async def start(self, nc: NatsClient) -> None: ...

    async def stop(self) -> None: ...

    async def checks(self) -> dict[str, bool]: ...


async def serve(name: str, settings: CommonSettings, worker: Worker) -> None:
    nc = await natsconn.connect_with(settings, f"sbx-{name}")

    async def ready() -> dict[str, bool]:
        return {"nats": nc.is_connected, **(await worker.checks())}

    ops = OpsServer(settings.metrics_host, settings.metrics_port, ready)
    await ops.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.start(nc)
    logger.info("service started", extra={"opsPort": ops.port})
    try:
        await stop.wait()
    finally:
        logger.info("service stopping")
        await worker.stop()
        await ops.stop()
        await natsconn.drain(nc)
        logger.info("service stopped")


def run_worker(name: str, settings: CommonSettings, worker: Worker, *, fast_loop: bool = False) -> None:
    """`fast_loop`: run on uvloop where it is installed (the orchestrator depends on it; the
    API's uvicorn runs on it too): a service that moves bulk bytes through NATS spends a large
    share of its time in the event loop's socket reads, writes and callbacks, which uvloop does
    in C. Where it is not installed (a platform without wheels), asyncio's own loop."""
    configure_logging(name, settings.log_level)
    setup_telemetry(name)
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if fast_loop:
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(name, settings, worker))
