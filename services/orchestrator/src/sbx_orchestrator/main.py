"""`sbx-orchestrator`: run the orchestrator service.

The service is a list of components sharing one context (database pool, Docker engine, event
publisher, per-sandbox locks). They start in order and stop in reverse: Docker events are
followed (and the recorded state reconciled) before commands are consumed, and on shutdown the
consumer stops fetching and finishes its commands first.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client as NatsClient
from sbx_common.worker import run_worker

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.context import Component, ComponentFactory, OrchestratorContext
from sbx_orchestrator.engine.container_watcher import ContainerWatcher
from sbx_orchestrator.engine.disk_watcher import DiskWatcher
from sbx_orchestrator.host_presence import HostPresence
from sbx_orchestrator.messaging.command_consumer import CommandConsumer
from sbx_orchestrator.messaging.exec_responder import ExecResponder
from sbx_orchestrator.messaging.files_server import FilesServer
from sbx_orchestrator.messaging.fswatch_server import FileWatchServer
from sbx_orchestrator.messaging.health_responder import HealthResponder
from sbx_orchestrator.messaging.terminal_server import TerminalServer
from sbx_orchestrator.network_guard import NetworkRefresher
from sbx_orchestrator.processes.manager import ProcessManager
from sbx_orchestrator.warm_pool import WarmPool

logger = logging.getLogger(__name__)

COMPONENTS: tuple[ComponentFactory, ...] = (
    HealthResponder,
    ContainerWatcher,
    NetworkRefresher,
    lambda context: context.holders,
    # Before commands: what was given up while this host was lost goes first.
    HostPresence,
    ExecResponder,
    ProcessManager,
    TerminalServer,
    FilesServer,
    FileWatchServer,
    CommandConsumer,
    DiskWatcher,
    WarmPool,
)


class Orchestrator:
    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.context: OrchestratorContext | None = None
        self.components: list[Component] = []

    async def start(self, nc: NatsClient) -> None:
        self.context = await OrchestratorContext.open(self.settings, nc)
        for factory in COMPONENTS:
            component = factory(self.context)
            await component.start()
            self.components.append(component)

    async def stop(self) -> None:
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                logger.exception(
                    "component did not stop cleanly", extra={"component": type(component).__name__}
                )
        self.components.clear()
        if self.context is not None:
            await self.context.close()

    async def checks(self) -> dict[str, bool]:
        return {"docker": self.context is not None and await self.context.engine.ping()}


def main() -> None:
    settings = OrchestratorSettings()
    # Every byte of a file transfer crosses the orchestrator's event loop (NATS frames in and out).
    run_worker("orchestrator", settings, Orchestrator(settings), fast_loop=True)
