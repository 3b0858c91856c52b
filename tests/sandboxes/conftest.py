"""Fixtures of the sandbox tests: an environment of the test's user (whose sandboxes are all
destroyed when the test ends, with a Docker safety net), a command spy, the Docker client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import docker
import httpx
import pytest
from sbx_common.labels import INSTANCE, OWNER_ID

from tests.harness import TEST_INSTANCE, Platform, User
from tests.sandboxes.support import CommandSpy, command_spy, create_environment, destroy_all


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def remove_containers_of(docker_client: docker.DockerClient, owner_id: str) -> None:
    labels = [f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={owner_id}"]
    for container in docker_client.containers.list(all=True, filters={"label": labels}):
        # Gone already, or being removed by the orchestrator right now: either way it goes.
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)


@pytest.fixture
async def environment(
    client: httpx.AsyncClient, user: User, test_image: str, docker_client: docker.DockerClient
) -> AsyncIterator[dict[str, Any]]:
    """A small environment of `user` on the busybox test image, serving HTTP on port 8080."""
    env = await create_environment(
        client,
        user,
        test_image,
        cpu=0.5,
        memory=64,
        ports=[{"container": 8080}],
        env={"GREETING": "hello", "SHARED": "from-environment"},
        command=[
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo hello-from-sandbox > /tmp/www/index.html"
            " && echo booted && echo ready >&2 && exec httpd -f -p 8080 -h /tmp/www",
        ],
    )
    yield env
    await destroy_all(client, user)
    remove_containers_of(docker_client, user.id)


@pytest.fixture
async def spy(platform: Platform) -> AsyncIterator[CommandSpy]:
    async with command_spy(platform.base_env["SBX_NATS_URL"]) as commands:
        yield commands
