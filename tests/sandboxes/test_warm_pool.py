"""Warm pools (`warmPool` on environments): the orchestrator keeps ready containers of the current
version of one owner's environment; a create without per-sandbox `env` or volumes takes one.

Pools are observed in `warm_pool_slots` (one row per waiting container) and in Docker, on the
session's platform (real NATS, PostgreSQL and Docker).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import docker
import httpx
import pytest
from sbx_common.labels import INSTANCE, OWNER_ID, container_name

from tests.support.api import User, create_environment, error_of, set_secret
from tests.support.docker import inspect_container, remove_containers
from tests.support.platform import TEST_INSTANCE
from tests.support.sandboxes import create_sandbox, destroy_all, exec_in, get_sandbox, lifecycle
from tests.support.waiting import wait_for

COMMAND = ["sh", "-c", "echo booted && exec sleep 3600"]


async def ready_slots(
    pg: asyncpg.Connection, environment_id: str, version: int | None = None
) -> list[uuid.UUID]:
    rows = await pg.fetch(
        "SELECT id FROM warm_pool_slots WHERE environment_id = $1 AND ready"
        " AND ($2::integer IS NULL OR environment_version = $2) ORDER BY created_at",
        uuid.UUID(environment_id),
        version,
    )
    return [r["id"] for r in rows]


async def slot_count(pg: asyncpg.Connection, environment_id: str) -> int:
    count: int = await pg.fetchval(
        "SELECT count(*) FROM warm_pool_slots WHERE environment_id = $1", uuid.UUID(environment_id)
    )
    return count


async def filled(
    pg: asyncpg.Connection, environment_id: str, n: int, version: int | None = None
) -> list[uuid.UUID]:
    async def probe() -> list[uuid.UUID] | None:
        slots = await ready_slots(pg, environment_id, version)
        return slots if len(slots) == n else None

    return await wait_for(probe, timeout=60, what=f"{n} ready pooled containers")


async def drained(pg: asyncpg.Connection, docker_client: docker.DockerClient, slots: list[uuid.UUID]) -> None:
    async def probe() -> bool:
        rows = await pg.fetchval("SELECT count(*) FROM warm_pool_slots WHERE id = ANY($1::uuid[])", slots)
        gone = all(inspect_container(docker_client, container_name(s)) is None for s in slots)
        return rows == 0 and gone

    await wait_for(probe, timeout=60, what="pool drained")


@pytest.fixture
async def pooled(client: httpx.AsyncClient, user: User, test_image: str) -> AsyncIterator[dict[str, Any]]:
    """An environment of `user` with a pool of 2."""
    env = await create_environment(client, user, test_image, cpu=0.1, memory=32, command=COMMAND, warmPool=2)
    yield env
    await destroy_all(client, user)
    await client.put(f"/environments/{env['id']}", json={"warmPool": 0}, headers=user.headers)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")


async def test_warm_pool_is_validated_and_echoed(
    client: httpx.AsyncClient, user: User, test_image: str
) -> None:
    for bad in (-1, 21, "3", 2.5, None):
        response = await client.post(
            "/environments",
            json={"name": f"e-{uuid.uuid4().hex[:6]}", "image": test_image, "warmPool": bad},
            headers=user.headers,
        )
        error_of(response, 400, "VALIDATION_ERROR")
    env = await create_environment(client, user, test_image, command=COMMAND)
    assert env["warmPool"] == 0
    updated = await client.put(f"/environments/{env['id']}", json={"warmPool": 21}, headers=user.headers)
    error_of(updated, 400, "VALIDATION_ERROR")
    updated = await client.put(f"/environments/{env['id']}", json={"warmPool": 3}, headers=user.headers)
    assert updated.json()["data"]["warmPool"] == 3
    versions = await client.get(f"/environments/{env['id']}/versions", headers=user.headers)
    assert [v["warmPool"] for v in versions.json()["data"]] == [0, 3]
    await client.put(f"/environments/{env['id']}", json={"warmPool": 0}, headers=user.headers)


async def test_create_is_served_from_the_pool_which_refills(
    client: httpx.AsyncClient,
    user: User,
    pooled: dict[str, Any],
    pg: asyncpg.Connection,
    docker_client: docker.DockerClient,
) -> None:
    slots = await filled(pg, pooled["id"], 2)
    sandbox = await create_sandbox(client, user, pooled["id"], "?wait=true&timeout=30", ttlSeconds=10)
    # ?wait answered `running`: the orchestrator's event for the claimed container arrived.
    assert sandbox["status"] == "running", sandbox
    assert uuid.UUID(sandbox["id"]) in slots  # the pooled container's reserved id
    assert sandbox["name"].startswith(pooled["name"])
    info = inspect_container(docker_client, container_name(uuid.UUID(sandbox["id"])))
    assert info is not None
    assert info["State"]["Running"]
    result = await exec_in(client, user, sandbox["id"], "echo hi-from-pool")
    assert result["stdout"].strip() == "hi-from-pool"
    # The pool makes a new one for the one taken.
    refilled = await filled(pg, pooled["id"], 2)
    assert uuid.UUID(sandbox["id"]) not in refilled
    # Its TTL (10 s) runs out like any sandbox's: the reaper destroys it.

    async def expired() -> bool:
        return (await get_sandbox(client, user, sandbox["id"]))["status"] == "expired"

    await wait_for(expired, timeout=60, what="pooled sandbox expired")


async def test_destroy_of_a_pooled_sandbox(
    client: httpx.AsyncClient,
    user: User,
    pooled: dict[str, Any],
    pg: asyncpg.Connection,
    docker_client: docker.DockerClient,
) -> None:
    await filled(pg, pooled["id"], 2)
    sandbox = await create_sandbox(client, user, pooled["id"], "?wait=true&timeout=30")
    gone = await lifecycle(client, user, sandbox["id"], "destroy")
    assert gone["status"] == "destroyed"
    assert inspect_container(docker_client, container_name(uuid.UUID(sandbox["id"]))) is None


async def test_concurrent_creates_get_different_containers(
    client: httpx.AsyncClient, user: User, pooled: dict[str, Any], pg: asyncpg.Connection
) -> None:
    slots = await filled(pg, pooled["id"], 2)
    made = await asyncio.gather(
        *(create_sandbox(client, user, pooled["id"], "?wait=true&timeout=30") for _ in range(3))
    )
    ids = {m["id"] for m in made}
    assert len(ids) == 3
    assert all(m["status"] == "running" for m in made), made
    # Two were pooled (each a different container), the third went cold with no error.
    assert {uuid.UUID(i) for i in ids} & set(slots) == set(slots)


async def test_env_overrides_go_cold(
    client: httpx.AsyncClient, user: User, pooled: dict[str, Any], pg: asyncpg.Connection
) -> None:
    slots = await filled(pg, pooled["id"], 2)
    sandbox = await create_sandbox(client, user, pooled["id"], "?wait=true&timeout=30", env={"MINE": "1"})
    assert sandbox["status"] == "running"
    assert uuid.UUID(sandbox["id"]) not in slots
    assert await ready_slots(pg, pooled["id"]) == slots  # the pool is untouched
    result = await exec_in(client, user, sandbox["id"], "echo $MINE")
    assert result["stdout"].strip() == "1"


async def test_another_users_create_never_gets_this_pool(
    *,
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    pooled: dict[str, Any],
    pg: asyncpg.Connection,
    test_image: str,
) -> None:
    slots = await filled(pg, pooled["id"], 2)
    # The other user cannot name this environment at all ...
    response = await client.post(
        "/sandboxes", json={"environmentId": pooled["id"]}, headers=other_user.headers
    )
    error_of(response, 404, "NOT_FOUND")
    # ... and their own pooled environment of the same definition has its own containers.
    theirs = await create_environment(
        client, other_user, test_image, cpu=0.1, memory=32, command=COMMAND, warmPool=1
    )
    try:
        their_slots = await filled(pg, theirs["id"], 1)
        sandbox = await create_sandbox(client, other_user, theirs["id"], "?wait=true&timeout=30")
        assert uuid.UUID(sandbox["id"]) in their_slots
        assert uuid.UUID(sandbox["id"]) not in slots
        assert await ready_slots(pg, pooled["id"]) == slots
    finally:
        await destroy_all(client, other_user)
        await client.put(f"/environments/{theirs['id']}", json={"warmPool": 0}, headers=other_user.headers)


async def test_new_version_secret_and_delete_drain_the_pool(
    client: httpx.AsyncClient,
    user: User,
    pooled: dict[str, Any],
    pg: asyncpg.Connection,
    docker_client: docker.DockerClient,
) -> None:
    first = await filled(pg, pooled["id"], 2, version=1)
    updated = await client.put(f"/environments/{pooled['id']}", json={"memory": 48}, headers=user.headers)
    assert updated.json()["data"]["version"] == 2
    await drained(pg, docker_client, first)
    second = await filled(pg, pooled["id"], 2, version=2)
    # A secret set after the containers were made: they hold the old value, so they go too.
    await set_secret(client, user, pooled["id"], "TOKEN", "s3cret")
    await drained(pg, docker_client, second)
    third = await filled(pg, pooled["id"], 2, version=2)
    sandbox = await create_sandbox(client, user, pooled["id"], "?wait=true&timeout=30")
    assert uuid.UUID(sandbox["id"]) in third
    assert (await exec_in(client, user, sandbox["id"], "echo $TOKEN"))["stdout"].strip() == "s3cret"
    await lifecycle(client, user, sandbox["id"], "destroy")
    await filled(pg, pooled["id"], 2, version=2)
    left = await ready_slots(pg, pooled["id"])
    deleted = await client.delete(f"/environments/{pooled['id']}", headers=user.headers)
    assert deleted.status_code in (200, 204), deleted.text
    await drained(pg, docker_client, left)
    assert await slot_count(pg, pooled["id"]) == 0


async def test_pooled_containers_count_against_the_quota(
    client: httpx.AsyncClient, user: User, test_image: str, pg: asyncpg.Connection
) -> None:
    # The default memory quota is 32768 MiB: a pool of 5 sandboxes of 12000 MiB gets only 2 of
    # them; once one is taken, sandbox + pooled container + another would be 36000: it stays at 1.
    env = await create_environment(
        client, user, test_image, cpu=0.1, memory=12000, command=COMMAND, warmPool=5
    )
    try:
        await filled(pg, env["id"], 2)
        assert await slot_count(pg, env["id"]) == 2
        sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=30")
        assert sandbox["status"] == "running"
        assert await ready_slots(pg, env["id"]) != []
        pooled_memory = await pg.fetchval(
            "SELECT coalesce(sum(memory_mib), 0) FROM warm_pool_slots WHERE owner_id = $1", uuid.UUID(user.id)
        )
        assert pooled_memory + 12000 <= 32768
        # Pooled containers never refuse a create: the API counts only sandboxes.
        cold = await client.post("/sandboxes", json={"environmentId": env["id"]}, headers=user.headers)
        assert cold.status_code == 201, cold.text
    finally:
        await client.put(f"/environments/{env['id']}", json={"warmPool": 0}, headers=user.headers)
        await destroy_all(client, user)
        remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")
