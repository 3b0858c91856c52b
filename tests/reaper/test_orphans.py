"""The reaper removes containers of its instance that no live sandbox owns, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import asyncpg
import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container
from sbx_common import labels
from sbx_devstack.processes import ServiceProcess

from tests.harness import TEST_IMAGE, TEST_INSTANCE
from tests.reaper.seed import seed_sandbox


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[list[Container]]:
    made: list[Container] = []
    yield made
    for container in made:
        with contextlib.suppress(NotFound):
            container.remove(force=True)


def run_labelled(
    client: docker.DockerClient, made: list[Container], sandbox_id: str | None, instance: str = TEST_INSTANCE
) -> Container:
    container_labels = {labels.PLATFORM: labels.PLATFORM_VALUE, labels.INSTANCE: instance}
    if sandbox_id is not None:
        container_labels[labels.SANDBOX_ID] = sandbox_id
    container = client.containers.run(
        TEST_IMAGE,
        ["sleep", "600"],
        detach=True,
        labels=container_labels,
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await asyncio.to_thread(exists, container):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"container {container.short_id} still exists after {timeout}s")


async def test_orphans_are_removed_and_owned_containers_kept(
    quick_reaper: ServiceProcess,
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
    await asyncio.sleep(1.5)
    assert exists(of_live)
    assert exists(other_instance)
