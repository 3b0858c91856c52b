"""Helpers of the streams tests: sandbox containers made directly, and reading stored logs."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

import asyncpg
import docker
from nats.aio.client import Client as NatsClient
from sbx_common import labels, subjects
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status

from tests.harness import TEST_IMAGE, TEST_INSTANCE


@dataclass
class DirectSandbox:
    """A container carrying the platform's labels, made without the orchestrator."""

    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    container_id: str


def start_labelled_container(script: str, instance: str = TEST_INSTANCE) -> DirectSandbox:
    sandbox_id, owner_id = uuid.uuid4(), uuid.uuid4()
    client = docker.from_env()
    container = client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", script],
        name=labels.container_name(sandbox_id),
        labels={
            labels.PLATFORM: labels.PLATFORM_VALUE,
            labels.INSTANCE: instance,
            labels.SANDBOX_ID: str(sandbox_id),
            labels.OWNER_ID: str(owner_id),
        },
        detach=True,
    )
    return DirectSandbox(sandbox_id, owner_id, str(container.id))


def remove_container(sandbox: DirectSandbox) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        docker.from_env().containers.get(sandbox.container_id).remove(force=True)


async def publish_running(nc: NatsClient, sandbox: DirectSandbox) -> None:
    event = SandboxEvent(sandbox_id=sandbox.sandbox_id, owner_id=sandbox.owner_id, status=Status.RUNNING)
    await nc.jetstream().publish(
        subjects.event(sandbox.owner_id, sandbox.sandbox_id, Status.RUNNING.value), event.to_bytes()
    )


async def stored_lines(pg: asyncpg.Connection, sandbox_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pg.fetch(
        "SELECT seq, stream, text, ts FROM sandbox_logs WHERE sandbox_id = $1 ORDER BY seq", sandbox_id
    )


def assert_contiguous(seqs: list[int], first: int = 1) -> None:
    assert seqs == list(range(first, first + len(seqs))), "seq has a gap or a duplicate"
