"""Fixtures of the streams tests."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from sbx_common import db, natsconn, topology
from sbx_common.labels import INSTANCE
from sbx_devstack.servers import EmbeddedNats, EmbeddedPostgres

from tests.harness import Platform, platform_env


@dataclass
class DedicatedPlatform:
    """A platform of its own (NATS, PostgreSQL, services) for tests that break things."""

    platform: Platform
    nats: EmbeddedNats
    postgres: EmbeddedPostgres
    instance: str

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def nats_url(self) -> str:
        return self.nats.url


async def _prepare(database_url: str, nats_url: str) -> None:
    await db.migrate(database_url)
    nc = await natsconn.connect(nats_url, "tests-streams-setup")
    await topology.apply_topology(nc.jetstream())
    await nc.close()


def _remove_instance_containers(instance: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={INSTANCE}={instance}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


@pytest.fixture(scope="module")
def dedicated_platform(
    request: pytest.FixtureRequest, test_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DedicatedPlatform]:
    """Own NATS and PostgreSQL, an instance name of its own, and the services the module lists
    in its `DEDICATED_SERVICES` (default: all but the reaper and metrics collector)."""
    root: Path = tmp_path_factory.mktemp("dedicated")
    nats_server = EmbeddedNats(root / "nats").start()
    postgres = EmbeddedPostgres(root / "postgres").start()
    instance = f"test-{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_prepare(postgres.url, nats_server.url))
        env = platform_env(postgres.url, nats_server.url)
        env["SBX_INSTANCE"] = instance
        env.update(getattr(request.module, "DEDICATED_ENV", {}))
        (root / "logs").mkdir()
        plat = Platform(base_env=env, log_dir=root / "logs")
        for name in getattr(request.module, "DEDICATED_SERVICES", ("orchestrator", "log-shipper", "api")):
            plat.start_service(name)
        yield DedicatedPlatform(plat, nats_server, postgres, instance)
        plat.stop_all()
    finally:
        _remove_instance_containers(instance)
        postgres.stop()
        nats_server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A NATS connection to the shared test server."""
    client = await natsconn.connect(nats_url, "tests-streams")
    yield client
    await client.close()
