"""Fixtures of the collector tests: the metrics bucket, a labelled busy container."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import docker
import pytest
from docker.models.containers import Container
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from sbx_common import labels
from sbx_common.topology import KV_METRICS

from tests.support.docker import TEST_IMAGE, remove_quietly, sandbox_labels
from tests.support.platform import TEST_INSTANCE
from tests.support.rows import SeededSandbox, seed_sandbox

CPU_LIMIT = 0.2
MEMORY_LIMIT = 64 * 1024 * 1024


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
        labels=sandbox_labels(TEST_INSTANCE, sandbox.id, sandbox.owner_id),
        nano_cpus=int(CPU_LIMIT * 1e9),
        mem_limit=MEMORY_LIMIT,
        pids_limit=64,
    )
    yield sandbox, container
    remove_quietly(container)
