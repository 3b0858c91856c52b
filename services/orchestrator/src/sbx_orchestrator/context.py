"""What the orchestrator's components share, opened at start-up and closed at shutdown.

A component is anything with `start()` and `stop()` built from the context
(`Component = factory(context)`); `main.COMPONENTS` lists them, so adding one (the terminal
server, for instance) is one line there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sbx_common import db
from sbx_common.broker import WorkerBroker

from sbx_orchestrator.agent.pool import AgentPool
from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.lifecycle import Lifecycle
from sbx_orchestrator.locks import SandboxLocks
from sbx_orchestrator.messaging.event_publisher import EventPublisher
from sbx_orchestrator.network_guard import NetworkGuard
from sbx_orchestrator.network_holders import NetworkHolders
from sbx_orchestrator.repository import Repository
from sbx_orchestrator.secrets import SecretOpener


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class OrchestratorContext:
    settings: OrchestratorSettings
    nc: NatsClient
    js: JetStreamContext
    broker: WorkerBroker  # FastStream on `nc`, for the request/reply responders
    pool: asyncpg.Pool
    repository: Repository
    engine: DockerEngine
    events: EventPublisher
    locks: SandboxLocks
    lifecycle: Lifecycle
    guard: NetworkGuard
    agents: AgentPool
    holders: NetworkHolders  # a component too (main.COMPONENTS)

    @classmethod
    async def open(cls, settings: OrchestratorSettings, nc: NatsClient) -> OrchestratorContext:
        # No session reset on release: the orchestrator keeps no session state on a pooled
        # connection (no LISTEN, session advisory lock, SET or open cursor), and the reset was
        # a second round trip after every query, on every command's path. Connections kept open
        # while idle, so commands arriving together do not each wait for one to be opened.
        pool = await db.create_pool(
            settings.database_url.get_secret_value(), min_size=8, max_size=20, session_reset=False
        )
        js = nc.jetstream()
        broker = WorkerBroker(nc, graceful_timeout=settings.shutdown_timeout)
        await broker.connect()
        repository = Repository(pool, settings.host_id)
        engine = DockerEngine(settings)
        await engine.ping()  # connects if the engine answers; otherwise later, when it does
        events = EventPublisher(js, nc)
        agents = AgentPool(settings, engine)
        holders = NetworkHolders(settings, engine, agents)
        guard = NetworkGuard(settings, repository, engine, holders)
        lifecycle = Lifecycle(
            settings,
            repository,
            engine,
            events,
            SecretOpener(settings),
            guard=guard,
            agents=agents,
            holders=holders,
        )
        return cls(
            settings=settings,
            nc=nc,
            js=js,
            broker=broker,
            pool=pool,
            repository=repository,
            engine=engine,
            events=events,
            locks=SandboxLocks(),
            lifecycle=lifecycle,
            guard=guard,
            agents=agents,
            holders=holders,
        )

    async def close(self) -> None:
        await self.guard.drain()
        await self.agents.close()
        await self.broker.stop()
        await self.pool.close()
        self.engine.close()


ComponentFactory = Callable[[OrchestratorContext], Component]
