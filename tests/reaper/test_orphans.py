"""The reaper removes containers of its instance that no live sandbox owns, and nothing else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from tests.reaper.reapers import QuickReaper
from tests.support.docker import TEST_IMAGE, remove_quietly, sandbox_labels
from tests.support.platform import TEST_INSTANCE
from tests.support.rows import seed_sandbox
from tests.support.waiting import wait_for


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[list[Container]]:
    made: list[Container] = []
    yield made
    for container in made:
        remove_quietly(container)


def run_labelled(
    client: docker.DockerClient, made: list[Container], sandbox_id: str | None, instance: str = TEST_INSTANCE
) -> Container:
    container = client.containers.run(
        TEST_IMAGE,
        ["sleep", "600"],
        detach=True,
        labels=sandbox_labels(instance, sandbox_id),
        name=f"sbx-test-{uuid.uuid4().hex[:10]}",
    )
    made.append(container)
    return container


def exists(container: Container) -> bool:
    try:
        container.reload()
    except NotFound:
        return False
    return True


async def wait_gone(container: Container, timeout: float = 20.0) -> None:
    async def gone() -> bool:
        return not await asyncio.to_thread(exists, container)

    await wait_for(gone, timeout, 0.2, f"container {container.short_id} gone")


async def test_orphans_are_removed_and_owned_containers_kept(
    quick_reaper: QuickReaper,
    docker_client: docker.DockerClient,
    containers: list[Container],
    pg: asyncpg.Connection,
) -> None:
    live = await seed_sandbox(pg, runtime_status="running")
    ended = await seed_sandbox(pg, verb="destroy", runtime_status="destroyed")

    no_row = run_labelled(docker_client, containers, str(uuid.uuid4()))
    no_label = run_labelled(docker_client, containers, None)
    of_ended = run_labelled(docker_client, containers, str(ended.id))
    of_live = run_labelled(docker_client, containers, str(live.id))
    other_instance = run_labelled(docker_client, containers, str(uuid.uuid4()), instance="someone-else")

    await asyncio.gather(wait_gone(no_row), wait_gone(no_label), wait_gone(of_ended))
    # The reaper has swept several times since: what it keeps, it keeps on purpose.
    await quick_reaper.swept()
    assert exists(of_live)
    assert exists(other_instance)
