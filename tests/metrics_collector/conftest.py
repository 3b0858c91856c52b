"""Fixtures of the collector tests: NATS, the metrics bucket, a labelled busy container."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg
import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from sbx_common import labels, natsconn
from sbx_common.topology import KV_METRICS

from tests.harness import TEST_IMAGE, TEST_INSTANCE
from tests.reaper.seed import SeededSandbox, seed_sandbox

CPU_LIMIT = 0.2
MEMORY_LIMIT = 64 * 1024 * 1024


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    conn = await natsconn.connect(nats_url, "tests-collector")
    yield conn
    await conn.close()


@pytest.fixture
async def kv(nc: NatsClient) -> KeyValue:
    return await nc.jetstream().key_value(KV_METRICS)


@pytest.fixture
async def running_sandbox(
    pg: asyncpg.Connection, docker_client: docker.DockerClient
) -> AsyncIterator[tuple[SeededSandbox, Container]]:
    """A running sandbox as the orchestrator leaves it: its row, and its container named and
    labelled like every sandbox container, busy at its CPU limit."""
    sandbox = await seed_sandbox(pg, runtime_status="running")
    container = docker_client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", "while :; do :; done"],
        detach=True,
        name=labels.container_name(sandbox.id),
        labels={
            labels.PLATFORM: labels.PLATFORM_VALUE,
            labels.INSTANCE: TEST_INSTANCE,
            labels.SANDBOX_ID: str(sandbox.id),
            labels.OWNER_ID: str(sandbox.owner_id),
        },
        nano_cpus=int(CPU_LIMIT * 1e9),
        mem_limit=MEMORY_LIMIT,
        pids_limit=64,
    )
    yield sandbox, container
    with contextlib.suppress(NotFound):
        container.remove(force=True)
