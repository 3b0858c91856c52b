"""Snapshots and fork (`POST /sandboxes/:id/snapshots`, `snapshotId` on create, replicate with
`withFilesystem`), seen as a user sees them, with Docker checked directly where the user's view
cannot tell (the image is gone, the source kept running)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import docker
import docker.errors
import httpx
import pytest
from sbx_common.labels import (
    INSTANCE,
    OWNER_ID,
    PLATFORM,
    PLATFORM_VALUE,
    SNAPSHOT_ID,
    container_name,
    snapshot_image,
)

from tests.support.api import User, create_environment, data_of, error_of, error_paths, signup
from tests.support.docker import remove_containers
from tests.support.platform import TEST_INSTANCE
from tests.support.sandboxes import create_sandbox, destroy_all, exec_in, lifecycle
from tests.support.waiting import wait_for

SCRIPT = "echo booted && exec sleep 3600"


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> AsyncIterator[User]:
    """A user whose sandboxes and snapshots are all gone when the test ends."""
    user = await signup(client)
    yield user
    await destroy_all(client, user)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")
    listed = await client.get("/snapshots?limit=500", headers=user.headers)
    for snap in listed.json()["data"]:
        await client.delete(f"/snapshots/{snap['id']}", headers=user.headers)
    client_images = docker.from_env()
    try:

        async def images_gone() -> bool:
            return not client_images.api.images(filters={"label": f"{OWNER_ID}={user.id}"})

        await wait_for(images_gone, timeout=60, interval=0.5, what="the user's snapshot images removed")
    finally:
        client_images.close()


async def running(client: httpx.AsyncClient, user: User, image: str) -> dict[str, Any]:
    env = await create_environment(client, user, image, cpu=0.5, memory=64, command=["sh", "-c", SCRIPT])
    sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=60")
    assert sandbox["status"] == "running", sandbox
    return sandbox


async def snapshot_ready(
    client: httpx.AsyncClient, user: User, sandbox_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/sandboxes/{sandbox_id}/snapshots", json=body, headers=user.headers)
    snap: dict[str, Any] = data_of(response, 202)
    assert snap["status"] == "creating"
    assert snap["sandboxId"] == sandbox_id

    async def settled() -> dict[str, Any] | None:
        got: dict[str, Any] = data_of(await client.get(f"/snapshots/{snap['id']}", headers=user.headers))
        return got if got["status"] != "creating" else None

    done = await wait_for(settled, timeout=60, what="snapshot settled")
    assert done["status"] == "ready", done
    return done


def image_exists(docker_client: docker.DockerClient, snapshot_id: str) -> bool:
    try:
        docker_client.api.inspect_image(snapshot_image(snapshot_id))
    except docker.errors.ImageNotFound:
        return False
    return True


async def test_snapshot_of_running_sandbox_carries_its_files_to_new_sandboxes(
    client: httpx.AsyncClient, owner: User, test_image: str, docker_client: docker.DockerClient
) -> None:
    source = await running(client, owner, test_image)
    wrote = await exec_in(client, owner, source["id"], "echo kept-by-snapshot > /data.txt")
    assert wrote["exitCode"] == 0, wrote

    snap = await snapshot_ready(client, owner, source["id"], name="first")
    assert snap["name"] == "first"
    assert snap["sizeBytes"] > 0
    # Paused only for the capture: Docker shows the source running, and it still answers.
    state = docker_client.api.inspect_container(container_name(source["id"]))["State"]
    assert state["Running"]
    assert not state["Paused"]
    assert (await exec_in(client, owner, source["id"], "cat /data.txt"))["stdout"] == "kept-by-snapshot\n"
    assert image_exists(docker_client, snap["id"])

    listed = data_of(await client.get(f"/snapshots?sandboxId={source['id']}", headers=owner.headers))
    assert [s["id"] for s in listed] == [snap["id"]]

    # A sandbox from the snapshot has the file, and the environment's settings.
    response = await client.post(
        "/sandboxes?wait=true&timeout=60", json={"snapshotId": snap["id"]}, headers=owner.headers
    )
    copy = data_of(response, 201)
    assert copy["status"] == "running", copy
    assert copy["environmentId"] == source["environmentId"]
    assert (await exec_in(client, owner, copy["id"], "cat /data.txt"))["stdout"] == "kept-by-snapshot\n"

    # While that sandbox is not destroyed, the snapshot stays.
    error_of(await client.delete(f"/snapshots/{snap['id']}", headers=owner.headers), 409, "CONFLICT")
    await lifecycle(client, owner, copy["id"], "destroy")
    data_of(await client.delete(f"/snapshots/{snap['id']}", headers=owner.headers))
    error_of(await client.get(f"/snapshots/{snap['id']}", headers=owner.headers), 404, "NOT_FOUND")

    async def image_gone() -> bool:
        return not image_exists(docker_client, snap["id"])

    await wait_for(image_gone, timeout=30, what="snapshot image removed")


async def test_replicate_with_filesystem_copies_files_as_they_are_now(
    client: httpx.AsyncClient, owner: User, test_image: str, docker_client: docker.DockerClient
) -> None:
    source = await running(client, owner, test_image)
    await exec_in(client, owner, source["id"], "echo fork-me > /fork.txt")
    response = await client.post(
        f"/sandboxes/{source['id']}/replicate?wait=true&timeout=90",
        json={"withFilesystem": True},
        headers=owner.headers,
    )
    copy = data_of(response, 201)
    assert copy["status"] == "running", copy
    assert (await exec_in(client, owner, copy["id"], "cat /fork.txt"))["stdout"] == "fork-me\n"
    # The copy's own snapshot is internal: not listed, not counted.
    assert data_of(await client.get("/snapshots", headers=owner.headers)) == []
    state = docker_client.api.inspect_container(container_name(source["id"]))["State"]
    assert state["Running"]
    assert not state["Paused"]
    # A plain replicate still starts from the environment's image.
    plain = data_of(
        await client.post(f"/sandboxes/{source['id']}/replicate?wait=true&timeout=60", headers=owner.headers),
        201,
    )
    missing = await exec_in(client, owner, plain["id"], "cat /fork.txt")
    assert missing["exitCode"] != 0


async def test_snapshot_of_stopped_sandbox(client: httpx.AsyncClient, owner: User, test_image: str) -> None:
    source = await running(client, owner, test_image)
    await exec_in(client, owner, source["id"], "echo while-stopped > /s.txt")
    await lifecycle(client, owner, source["id"], "stop")
    snap = await snapshot_ready(client, owner, source["id"])
    copy = data_of(
        await client.post(
            "/sandboxes?wait=true&timeout=60", json={"snapshotId": snap["id"]}, headers=owner.headers
        ),
        201,
    )
    assert (await exec_in(client, owner, copy["id"], "cat /s.txt"))["stdout"] == "while-stopped\n"


async def test_snapshot_refusals(
    client: httpx.AsyncClient,
    owner: User,
    other_user: User,
    test_image: str,
    docker_client: docker.DockerClient,
) -> None:
    source = await running(client, owner, test_image)
    snap = await snapshot_ready(client, owner, source["id"])

    # Another user sees none of it, and can use none of it.
    error_of(await client.get(f"/snapshots/{snap['id']}", headers=other_user.headers), 404, "NOT_FOUND")
    error_of(await client.delete(f"/snapshots/{snap['id']}", headers=other_user.headers), 404, "NOT_FOUND")
    response = await client.post("/sandboxes", json={"snapshotId": snap["id"]}, headers=other_user.headers)
    error_of(response, 404, "NOT_FOUND")
    response = await client.post(f"/sandboxes/{source['id']}/snapshots", json={}, headers=other_user.headers)
    error_of(response, 404, "NOT_FOUND")
    assert data_of(await client.get("/snapshots", headers=other_user.headers)) == []

    # Both sources at once, or neither, is a validation error.
    env_id = source["environmentId"]
    both = await client.post(
        "/sandboxes", json={"snapshotId": snap["id"], "environmentId": env_id}, headers=owner.headers
    )
    assert error_paths(both) == ["environmentId"]
    assert error_paths(await client.post("/sandboxes", json={}, headers=owner.headers)) == ["environmentId"]

    # A destroyed sandbox has no filesystem left to keep.
    await lifecycle(client, owner, source["id"], "destroy")
    gone = await client.post(f"/sandboxes/{source['id']}/snapshots", json={}, headers=owner.headers)
    error_of(gone, 409, "INVALID_STATE")
    assert len(data_of(await client.get("/snapshots", headers=owner.headers))) == 1


async def test_snapshot_quota(client: httpx.AsyncClient, owner: User, test_image: str) -> None:
    source = await running(client, owner, test_image)
    await lifecycle(client, owner, source["id"], "stop")
    limit = 20  # SBX_MAX_SNAPSHOTS_PER_USER's default
    for _ in range(limit):
        response = await client.post(f"/sandboxes/{source['id']}/snapshots", json={}, headers=owner.headers)
        data_of(response, 202)
    over = await client.post(f"/sandboxes/{source['id']}/snapshots", json={}, headers=owner.headers)
    error = error_of(over, 429, "QUOTA_EXCEEDED")
    assert error["details"]["quota"] == "snapshots"
    listed = data_of(await client.get("/snapshots?limit=100", headers=owner.headers))
    assert len(listed) == limit


async def test_reaper_finishes_half_made_snapshots(
    client: httpx.AsyncClient,
    owner: User,
    test_image: str,
    docker_client: docker.DockerClient,
    pg: asyncpg.Connection,
) -> None:
    """A snapshot recorded but whose command never went out is carried out by the reaper; an
    image of this instance without a snapshot row is removed."""
    source = await running(client, owner, test_image)
    snapshot_id = uuid.uuid4()
    await pg.execute(
        "INSERT INTO snapshots (id, owner_id, sandbox_id, environment_id, environment_version, name,"
        " command_id) VALUES ($1, $2, $3, $4, $5, 'seeded', $6)",
        snapshot_id,
        uuid.UUID(owner.id),
        uuid.UUID(source["id"]),
        uuid.UUID(source["environmentId"]),
        source["environmentVersion"],
        uuid.uuid4(),
    )

    async def ready() -> bool:
        got = data_of(await client.get(f"/snapshots/{snapshot_id}", headers=owner.headers))
        return bool(got["status"] == "ready")

    await wait_for(ready, timeout=60, what="seeded snapshot made by the reaper's re-publish")
    assert image_exists(docker_client, str(snapshot_id))

    orphan = uuid.uuid4()
    docker_client.api.commit(
        container_name(source["id"]),
        repository=snapshot_image(orphan).rsplit(":", 1)[0],
        tag="latest",
        conf={"Labels": {PLATFORM: PLATFORM_VALUE, INSTANCE: TEST_INSTANCE, SNAPSHOT_ID: str(orphan)}},
    )
    assert image_exists(docker_client, str(orphan))

    async def orphan_gone() -> bool:
        return not image_exists(docker_client, str(orphan))

    await wait_for(orphan_gone, timeout=90, interval=0.5, what="orphan snapshot image removed")
    assert image_exists(docker_client, str(snapshot_id))


async def seed_snapshot(
    pg: asyncpg.Connection, owner: User, source: dict[str, Any], *, hidden: bool = False
) -> uuid.UUID:
    """A snapshot row as the API records it (its command not published: the reaper does that)."""
    snapshot_id = uuid.uuid4()
    await pg.execute(
        "INSERT INTO snapshots (id, owner_id, sandbox_id, environment_id, environment_version, name,"
        " hidden, command_id) VALUES ($1, $2, $3, $4, $5, 'seeded', $6, $7)",
        snapshot_id,
        uuid.UUID(owner.id),
        uuid.UUID(source["id"]),
        uuid.UUID(source["environmentId"]),
        source["environmentVersion"],
        hidden,
        uuid.uuid4(),
    )
    return snapshot_id


async def test_reaper_removes_snapshot_images_nothing_needs(
    client: httpx.AsyncClient,
    owner: User,
    test_image: str,
    docker_client: docker.DockerClient,
    pg: asyncpg.Connection,
) -> None:
    """A snapshot whose creation failed half-way (the image committed, the attempt as a whole
    failed) and a replicate's hidden snapshot whose copy's create was never published (withdrawn,
    so no sandbox is made from it) leave no image once the reaper has swept; a ready snapshot's
    image stays."""
    source = await running(client, owner, test_image)
    kept = await snapshot_ready(client, owner, source["id"])

    failed = await seed_snapshot(pg, owner, source)
    await pg.execute(
        "INSERT INTO snapshot_runtime (snapshot_id, status, status_reason) VALUES ($1, 'failed', $2)",
        failed,
        "snapshot failed after 5 attempts",
    )
    docker_client.api.commit(
        container_name(source["id"]),
        repository=snapshot_image(failed).rsplit(":", 1)[0],
        tag="latest",
        conf={
            "Labels": {
                PLATFORM: PLATFORM_VALUE,
                INSTANCE: TEST_INSTANCE,
                OWNER_ID: owner.id,
                SNAPSHOT_ID: str(failed),
            }
        },
    )
    assert image_exists(docker_client, str(failed))

    # The fork's first half went out (its snapshot is made), its second did not.
    fork = await seed_snapshot(pg, owner, source, hidden=True)

    async def fork_made() -> bool:
        size = await pg.fetchval(
            "SELECT size_bytes FROM snapshot_runtime WHERE snapshot_id = $1 AND status = 'ready'", fork
        )
        return bool(size)

    await wait_for(fork_made, timeout=60, what="the fork's hidden snapshot made from the reaper's re-publish")

    async def both_gone() -> bool:
        return not image_exists(docker_client, str(failed)) and not image_exists(docker_client, str(fork))

    await wait_for(both_gone, timeout=120, interval=0.5, what="the unneeded snapshot images removed")
    assert image_exists(docker_client, kept["id"])


async def test_snapshot_with_wait_and_an_idempotency_key(
    client: httpx.AsyncClient, owner: User, test_image: str, docker_client: docker.DockerClient
) -> None:
    """`?wait=true` answers once the snapshot is ready; a repeat with the same `Idempotency-Key`
    gets the first answer and makes no second snapshot; the key on another request is refused."""
    source = await running(client, owner, test_image)
    path = f"/sandboxes/{source['id']}/snapshots"
    headers = {**owner.headers, "Idempotency-Key": uuid.uuid4().hex}

    first = await client.post(f"{path}?wait=true&timeout=60", json={"name": "waited"}, headers=headers)
    snap = data_of(first, 202)
    assert snap["status"] == "ready", snap
    assert snap["sizeBytes"] > 0
    assert image_exists(docker_client, snap["id"])

    again = await client.post(f"{path}?wait=true&timeout=60", json={"name": "waited"}, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert [s["id"] for s in data_of(await client.get("/snapshots", headers=owner.headers))] == [snap["id"]]

    other = await client.post(path, json={"name": "another"}, headers=headers)
    assert error_paths(other) == ["Idempotency-Key"]
    too_long = await client.post(f"{path}?wait=true&timeout=301", json={}, headers=owner.headers)
    assert error_paths(too_long) == ["timeout"]

    # Without wait, the answer comes at once: `creating`.
    quick = data_of(await client.post(path, json={}, headers=owner.headers), 202)
    assert quick["status"] == "creating"


async def test_refused_replicates_leave_nothing_behind(
    client: httpx.AsyncClient, owner: User, other_user: User, test_image: str, pg: asyncpg.Connection
) -> None:
    """A replicate with `withFilesystem` refused for its input (a mount path the platform keeps,
    two volumes on one path, another user's volume or sandbox) makes no sandbox and no hidden
    snapshot (so no image either)."""
    source = await running(client, owner, test_image)
    volume = data_of(
        await client.post("/volumes", json={"name": "r", "sizeMiB": 8}, headers=owner.headers), 201
    )
    theirs = data_of(
        await client.post("/volumes", json={"name": "t", "sizeMiB": 8}, headers=other_user.headers), 201
    )
    path = f"/sandboxes/{source['id']}/replicate"

    def body(*mounts: tuple[str, str]) -> dict[str, Any]:
        return {"withFilesystem": True, "volumes": [{"volumeId": v, "mountPath": p} for v, p in mounts]}

    for mount_path in ("/proc", "relative", "/"):
        response = await client.post(path, json=body((volume["id"], mount_path)), headers=owner.headers)
        assert "volumes.0.mountPath" in error_paths(response), response.text
    response = await client.post(
        path, json=body((volume["id"], "/a"), (volume["id"], "/a")), headers=owner.headers
    )
    assert error_paths(response) == ["volumes"]
    error_of(
        await client.post(path, json=body((theirs["id"], "/a")), headers=owner.headers), 404, "NOT_FOUND"
    )
    error_of(
        await client.post(path, json={"withFilesystem": True}, headers=other_user.headers), 404, "NOT_FOUND"
    )

    listed = data_of(await client.get("/sandboxes", headers=owner.headers))
    assert [s["id"] for s in listed] == [source["id"]]
    assert data_of(await client.get("/sandboxes", headers=other_user.headers)) == []
    made = await pg.fetchval("SELECT count(*) FROM snapshots WHERE sandbox_id = $1", uuid.UUID(source["id"]))
    assert made == 0
    await client.delete(f"/volumes/{volume['id']}", headers=owner.headers)
    await client.delete(f"/volumes/{theirs['id']}", headers=other_user.headers)
