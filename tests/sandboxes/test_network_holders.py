"""Network holders (docs/network-holders.md): a cold create's container joins the network
namespace of a container the orchestrator made ahead, which serves that one sandbox for its whole
life and goes when it is destroyed. Observed in Docker and in `sandbox_runtime.address`, on the
session's platform (real NATS, PostgreSQL and Docker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import docker
import httpx
import pytest
from sbx_common.labels import HOLDER_HOST, HOLDER_INSTANCE, INSTANCE, OWNER_ID, PLATFORM, PLATFORM_VALUE
from sbx_common.labels import container_name as sandbox_container
from sbx_common.subjects import DEFAULT_HOST
from sbx_orchestrator.engine.firewall import network_name

from tests.support.api import User, create_environment
from tests.support.docker import inspect_container, remove_containers
from tests.support.platform import TEST_INSTANCE, Platform
from tests.support.sandboxes import create_sandbox, destroy_all, exec_in, lifecycle
from tests.support.waiting import wait_for

HOLDERS = 4  # SBX_NETWORK_HOLDERS' default, which the session's platform runs with
NETWORK = network_name(TEST_INSTANCE)


def holders(docker_client: docker.DockerClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = docker_client.api.containers(
        all=True, filters={"label": f"{HOLDER_INSTANCE}={TEST_INSTANCE}"}
    )
    return found


def joined(docker_client: docker.DockerClient, sandbox_id: str) -> str | None:
    """The container whose namespace the sandbox's container joins (None: its own network)."""
    info = inspect_container(docker_client, sandbox_container(sandbox_id))
    assert info is not None
    kind, _, target = info["HostConfig"]["NetworkMode"].partition(":")
    return target if kind == "container" else None


def address_of(docker_client: docker.DockerClient, container_id: str) -> str:
    info = inspect_container(docker_client, container_id)
    assert info is not None
    return str(info["NetworkSettings"]["Networks"][NETWORK]["IPAddress"])


async def recorded_address(pg: asyncpg.Connection, sandbox_id: str) -> str | None:
    value = await pg.fetchval(
        "SELECT host(address) FROM sandbox_runtime WHERE sandbox_id = $1", uuid.UUID(sandbox_id)
    )
    return str(value) if value is not None else None


async def until_removed(docker_client: docker.DockerClient, container_id: str, timeout: float = 60) -> None:
    async def removed() -> bool:
        return inspect_container(docker_client, container_id) is None

    await wait_for(removed, timeout=timeout, what=f"container {container_id[:12]} removed")


async def ready_holders(docker_client: docker.DockerClient) -> None:
    """Until the pool is full: HOLDERS running holders no container joins."""

    async def probe() -> bool:
        taken = {
            c["HostConfig"]["NetworkMode"].partition(":")[2]
            for c in docker_client.api.containers(all=True, filters={"label": f"{INSTANCE}={TEST_INSTANCE}"})
        }
        ready = [h for h in holders(docker_client) if h["Id"] not in taken and h["State"] == "running"]
        return len(ready) >= HOLDERS

    await wait_for(probe, timeout=60, what=f"{HOLDERS} ready network holders")


@pytest.fixture
async def quiet_env(client: httpx.AsyncClient, user: User, test_image: str) -> AsyncIterator[dict[str, Any]]:
    """An environment without ports, whose sandboxes are all destroyed when the test ends."""
    env = await create_environment(
        client, user, test_image, cpu=0.2, memory=32, command=["sh", "-c", "exec sleep 3600"]
    )
    yield env
    await destroy_all(client, user)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")


async def test_a_create_joins_a_holder_that_serves_the_sandbox_until_it_is_destroyed(
    client: httpx.AsyncClient,
    user: User,
    quiet_env: dict[str, Any],
    pg: asyncpg.Connection,
    docker_client: docker.DockerClient,
) -> None:
    await ready_holders(docker_client)
    sandbox = await create_sandbox(client, user, quiet_env["id"], "?wait=true&timeout=60")
    assert sandbox["status"] == "running", sandbox
    sid = sandbox["id"]
    holder_id = joined(docker_client, sid)
    assert holder_id is not None
    holder = inspect_container(docker_client, holder_id)
    assert holder is not None
    assert holder["State"]["Running"]
    # A holder is no sandbox container: the reaper's and the watchers' listings never see it.
    assert INSTANCE not in holder["Config"]["Labels"]
    assert holder["Config"]["Labels"][HOLDER_INSTANCE] == TEST_INSTANCE
    # The sandbox has the holder's address: recorded (the port proxy's target) and its own inside.
    address = address_of(docker_client, holder_id)
    assert await recorded_address(pg, sid) == address
    inside = await exec_in(client, user, sid, "ip -4 addr show eth0")
    assert inside["exitCode"] == 0, inside
    assert f"inet {address}/" in inside["stdout"], inside
    assert "inet6" not in (await exec_in(client, user, sid, "ip addr"))["stdout"]

    # Stopped and started again, the sandbox keeps its holder and its address.
    assert (await lifecycle(client, user, sid, "stop"))["status"] == "stopped"
    assert await recorded_address(pg, sid) is None
    still = inspect_container(docker_client, holder_id)
    assert still is not None
    assert still["State"]["Running"]
    assert (await lifecycle(client, user, sid, "start"))["status"] == "running"
    assert joined(docker_client, sid) == holder_id
    assert await recorded_address(pg, sid) == address

    # Destroyed, its holder goes with it, and the next sandbox gets another one.
    assert (await lifecycle(client, user, sid, "destroy"))["status"] == "destroyed"
    await until_removed(docker_client, holder_id, timeout=30)
    await ready_holders(docker_client)
    other = await create_sandbox(client, user, quiet_env["id"], "?wait=true&timeout=60")
    assert other["status"] == "running", other
    other_holder = joined(docker_client, other["id"])
    assert other_holder is not None
    assert other_holder != holder_id


async def test_a_sandbox_with_published_ports_gets_its_own_network(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    await ready_holders(docker_client)
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=60")
    assert sandbox["status"] == "running", sandbox
    info = inspect_container(docker_client, sandbox_container(sandbox["id"]))
    assert info is not None
    assert info["HostConfig"]["NetworkMode"] == NETWORK
    [endpoint] = sandbox["endpoints"]
    async with httpx.AsyncClient() as direct:
        response = await direct.get(endpoint["url"] + "/index.html")
    assert response.text.strip() == "hello-from-sandbox"


async def test_a_holder_the_engine_stopped_is_started_with_its_sandbox(
    client: httpx.AsyncClient,
    user: User,
    quiet_env: dict[str, Any],
    pg: asyncpg.Connection,
    docker_client: docker.DockerClient,
) -> None:
    """As after an engine restart: the holder of a stopped sandbox stopped too."""
    await ready_holders(docker_client)
    sandbox = await create_sandbox(client, user, quiet_env["id"], "?wait=true&timeout=60")
    sid = sandbox["id"]
    holder_id = joined(docker_client, sid)
    assert holder_id is not None
    assert (await lifecycle(client, user, sid, "stop"))["status"] == "stopped"
    docker_client.api.stop(holder_id, timeout=0)

    assert (await lifecycle(client, user, sid, "start"))["status"] == "running"
    holder = inspect_container(docker_client, holder_id)
    assert holder is not None
    assert holder["State"]["Running"]
    address = address_of(docker_client, holder_id)
    assert await recorded_address(pg, sid) == address
    inside = await exec_in(client, user, sid, "ip -4 addr show eth0")
    assert f"inet {address}/" in inside["stdout"], inside


async def test_holders_no_sandbox_uses_are_removed_when_the_orchestrator_starts(
    client: httpx.AsyncClient,
    user: User,
    quiet_env: dict[str, Any],
    platform: Platform,
    docker_client: docker.DockerClient,
) -> None:
    """Left by a crash (a sandbox's container removed while the orchestrator was down, or the
    ready pool of a run that was killed): swept at start-up; a holder in use is kept."""
    await ready_holders(docker_client)
    sandbox = await create_sandbox(client, user, quiet_env["id"], "?wait=true&timeout=60")
    in_use = joined(docker_client, sandbox["id"])
    assert in_use is not None
    stray = docker_client.containers.run(
        quiet_env["image"],
        ["sleep", "3600"],
        detach=True,
        network=NETWORK,
        labels={PLATFORM: PLATFORM_VALUE, HOLDER_INSTANCE: TEST_INSTANCE, HOLDER_HOST: DEFAULT_HOST},
    )
    try:
        await asyncio.to_thread(platform.restart_service, "orchestrator")
        await until_removed(docker_client, str(stray.id), timeout=60)
        await ready_holders(docker_client)
        assert joined(docker_client, sandbox["id"]) == in_use
        kept = inspect_container(docker_client, in_use)
        assert kept is not None
        assert kept["State"]["Running"]
        # The restarted orchestrator knows whose holder it is: a destroy removes it.
        assert (await lifecycle(client, user, sandbox["id"], "destroy"))["status"] == "destroyed"
        await until_removed(docker_client, in_use, timeout=90)
    finally:
        if inspect_container(docker_client, str(stray.id)) is not None:
            stray.remove(force=True)
