"""Volumes (`/volumes`, `volumes` on create and replicate): data that outlives its sandboxes, a
size limit that holds inside the sandbox, read-only mounts, refusals that leave nothing behind.
The host is checked directly where the user's view cannot tell (no mount, no image file)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sbx_common.labels import INSTANCE, OWNER_ID

from tests.support.api import User, create_environment, data_of, error_of, error_paths, signup
from tests.support.docker import remove_containers
from tests.support.platform import TEST_INSTANCE, platform_env
from tests.support.sandboxes import destroy_all, exec_in, lifecycle
from tests.support.waiting import wait_for

VOLUMES_DIR = Path(platform_env("", "")["SBX_VOLUMES_DIR"])


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> AsyncIterator[User]:
    """A user whose sandboxes and volumes are all gone when the test ends."""
    user = await signup(client)
    yield user
    await destroy_all(client, user)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")
    listed = await client.get("/volumes?limit=500", headers=user.headers)
    for volume in listed.json()["data"]:
        await client.delete(f"/volumes/{volume['id']}", headers=user.headers)


@pytest.fixture
async def environment(client: httpx.AsyncClient, owner: User, test_image: str) -> dict[str, Any]:
    return await create_environment(
        client, owner, test_image, cpu=0.5, memory=64, command=["sh", "-c", "exec sleep 3600"]
    )


async def new_volume(client: httpx.AsyncClient, user: User, **body: Any) -> dict[str, Any]:
    volume: dict[str, Any] = data_of(await client.post("/volumes", json=body, headers=user.headers), 201)
    return volume


async def sandbox_with(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    response = await client.post(
        "/sandboxes?wait=true&timeout=60",
        json={"environmentId": environment["id"], "volumes": volumes},
        headers=user.headers,
    )
    sandbox: dict[str, Any] = data_of(response, 201)
    assert sandbox["status"] == "running", sandbox
    return sandbox


def mounts() -> str:
    return Path("/proc/self/mounts").read_text()


def loop_files() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False).stdout


async def test_volume_outlives_its_sandbox_and_goes_when_deleted(
    client: httpx.AsyncClient, owner: User, environment: dict[str, Any]
) -> None:
    volume = await new_volume(client, owner, name="data", sizeMiB=64)
    assert volume["sizeMiB"] == 64
    assert volume["attachedTo"] == []
    first = await sandbox_with(client, owner, environment, [{"volumeId": volume["id"], "mountPath": "/data"}])
    wrote = await exec_in(client, owner, first["id"], "echo survives > /data/note.txt && sync")
    assert wrote["exitCode"] == 0, wrote
    got = data_of(await client.get(f"/volumes/{volume['id']}", headers=owner.headers))
    assert got["attachedTo"] == [first["id"]]

    # Mounted: it cannot be deleted.
    error_of(await client.delete(f"/volumes/{volume['id']}", headers=owner.headers), 409, "CONFLICT")
    await lifecycle(client, owner, first["id"], "destroy")
    got = data_of(await client.get(f"/volumes/{volume['id']}", headers=owner.headers))
    assert got["attachedTo"] == []
    assert got["usedBytes"] > 0

    second = await sandbox_with(
        client, owner, environment, [{"volumeId": volume["id"], "mountPath": "/mnt/kept", "readOnly": True}]
    )
    read = await exec_in(client, owner, second["id"], "cat /mnt/kept/note.txt")
    assert read["stdout"] == "survives\n"
    refused = await exec_in(client, owner, second["id"], "echo no > /mnt/kept/other.txt")
    assert refused["exitCode"] != 0
    assert "Read-only file system" in refused["stderr"]
    await lifecycle(client, owner, second["id"], "destroy")

    image = VOLUMES_DIR / volume["id"] / "fs.img"
    assert image.exists()
    data_of(await client.delete(f"/volumes/{volume['id']}", headers=owner.headers))
    error_of(await client.get(f"/volumes/{volume['id']}", headers=owner.headers), 404, "NOT_FOUND")

    async def gone() -> bool:
        return not (VOLUMES_DIR / volume["id"]).exists() and volume["id"] not in mounts()

    await wait_for(gone, timeout=30, what="volume unmounted and removed")
    assert volume["id"] not in loop_files()


async def test_writing_past_the_size_fails_inside(
    client: httpx.AsyncClient, owner: User, environment: dict[str, Any]
) -> None:
    volume = await new_volume(client, owner, name="small", sizeMiB=8)
    sandbox = await sandbox_with(client, owner, environment, [{"volumeId": volume["id"], "mountPath": "/v"}])
    full = await exec_in(
        client, owner, sandbox["id"], "dd if=/dev/zero of=/v/big bs=1M count=32", timeout_seconds=60
    )
    assert full["exitCode"] != 0
    assert "No space left on device" in full["stderr"]
    # The platform (and the sandbox) are still up.
    assert (await exec_in(client, owner, sandbox["id"], "echo alive"))["stdout"] == "alive\n"
    data_of(await client.get("/volumes", headers=owner.headers))


async def test_refused_requests_leave_nothing_behind(
    client: httpx.AsyncClient, owner: User, other_user: User, environment: dict[str, Any]
) -> None:
    volume = await new_volume(client, owner, name="guarded", sizeMiB=16)
    before = set(os.listdir(VOLUMES_DIR)) if VOLUMES_DIR.exists() else set()
    for path in (
        "relative/path",
        "/",
        "/proc",
        "/proc/x",
        "/sys/fs",
        "/dev",
        "/dev/shm",
        "/a/../etc",
        "/a:b",
    ):
        response = await client.post(
            "/sandboxes",
            json={
                "environmentId": environment["id"],
                "volumes": [{"volumeId": volume["id"], "mountPath": path}],
            },
            headers=owner.headers,
        )
        assert "volumes.0.mountPath" in error_paths(response), (path, response.text)
    two = [
        {"volumeId": volume["id"], "mountPath": "/same"},
        {"volumeId": volume["id"], "mountPath": "/same/"},
    ]
    response = await client.post(
        "/sandboxes", json={"environmentId": environment["id"], "volumes": two}, headers=owner.headers
    )
    assert error_paths(response) == ["volumes"]
    # Another user's volume does not exist for this one.
    theirs = await client.post(
        "/sandboxes",
        json={"environmentId": environment["id"], "volumes": [{"volumeId": volume["id"], "mountPath": "/x"}]},
        headers=other_user.headers,
    )
    error_of(theirs, 404, "NOT_FOUND")
    error_of(await client.get(f"/volumes/{volume['id']}", headers=other_user.headers), 404, "NOT_FOUND")
    error_of(await client.delete(f"/volumes/{volume['id']}", headers=other_user.headers), 404, "NOT_FOUND")
    # Sizes out of range, a name taken.
    for size in (0, 102401, "10"):
        response = await client.post("/volumes", json={"name": "x", "sizeMiB": size}, headers=owner.headers)
        assert "sizeMiB" in error_paths(response)
    error_of(await client.post("/volumes", json={"name": "guarded"}, headers=owner.headers), 409, "CONFLICT")

    assert data_of(await client.get("/sandboxes", headers=owner.headers)) == []
    assert [v["name"] for v in data_of(await client.get("/volumes", headers=owner.headers))] == ["guarded"]
    after = set(os.listdir(VOLUMES_DIR)) if VOLUMES_DIR.exists() else set()
    assert after == before
    assert volume["id"] not in mounts()
    assert volume["id"] not in loop_files()


async def test_volume_quotas(client: httpx.AsyncClient, owner: User) -> None:
    big = await client.post("/volumes", json={"name": "huge", "sizeMiB": 20481}, headers=owner.headers)
    assert error_of(big, 429, "QUOTA_EXCEEDED")["details"]["quota"] == "volumeMiB"
    for index in range(10):
        await new_volume(client, owner, name=f"v{index}", sizeMiB=1)
    over = await client.post("/volumes", json={"name": "v10", "sizeMiB": 1}, headers=owner.headers)
    assert error_of(over, 429, "QUOTA_EXCEEDED")["details"]["quota"] == "volumes"
