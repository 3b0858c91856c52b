"""Snapshots and volumes through the clients: the Python SDK (sync and async) and the `sbx`
command line, against the session's platform."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_platform import AsyncClient, Client, ConflictError, VolumeMount

from tests.clients.python.support import PASSWORD, new_email
from tests.clients.python.test_cli import cli_env, ok, runner
from tests.support.platform import Platform
from tests.support.waiting import wait_until

BOOT = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
def sdk(platform: Platform) -> Iterator[Client]:
    client = Client(base_url=platform.api_url)
    client.auth.signup(new_email(), PASSWORD)
    yield client
    for sandbox in client.sandboxes.list():
        sandbox.destroy()
    for snap in client.snapshots.list():
        client.snapshots.delete(snap.id)
    for volume in client.volumes.list():
        client.volumes.delete(volume.id)
    client.close()


def test_sdk_snapshot_fork_and_volume(sdk: Client, test_image: str) -> None:
    environment = sdk.environments.create(f"sv-{uuid.uuid4().hex[:8]}", test_image, command=BOOT)
    volume = sdk.volumes.create("sdk-data", size_mib=16)
    assert volume.size_mib == 16
    source = sdk.sandboxes.create(
        environment.id, volumes=[VolumeMount(volume_id=volume.id, mount_path="/data")]
    )
    assert source.status == "running"
    assert source.exec("echo on-disk > /root.txt && echo on-volume > /data/v.txt").exit_code == 0
    assert sdk.volumes.get(volume.id).attached_to == [source.id]

    snap = source.snapshot(name="sdk-snap")
    assert snap.status == "creating"
    wait_until(lambda: sdk.snapshots.get(snap.id).status != "creating", timeout=60, interval=0.1)
    assert sdk.snapshots.get(snap.id).status == "ready"
    assert [s.id for s in sdk.snapshots.list(sandbox_id=source.id)] == [snap.id]
    waited = source.snapshot(name="sdk-waited", wait=True, timeout=60)
    assert waited.status == "ready"
    assert waited.size_bytes > 0
    sdk.snapshots.delete(waited.id)

    from_snapshot = sdk.sandboxes.create(snapshot_id=snap.id)
    assert from_snapshot.exec("cat /root.txt").stdout == "on-disk\n"
    fork = source.replicate(
        with_filesystem=True, volumes=[{"volumeId": volume.id, "mountPath": "/v", "readOnly": True}]
    )
    assert fork.exec("cat /root.txt /v/v.txt").stdout == "on-disk\non-volume\n"

    with pytest.raises(ConflictError):
        sdk.volumes.delete(volume.id)
    with pytest.raises(ConflictError):
        sdk.snapshots.delete(snap.id)


async def test_async_sdk_volumes_and_snapshots(platform: Platform, test_image: str) -> None:
    async with AsyncClient(base_url=platform.api_url) as client:
        await client.auth.signup(new_email(), PASSWORD)
        volume = await client.volumes.create("async-data")
        assert volume.size_mib == 1024
        assert [v.id async for v in client.volumes.list()] == [volume.id]
        assert (await client.volumes.get(volume.id)).name == "async-data"
        assert [s async for s in client.snapshots.list()] == []
        await client.volumes.delete(volume.id)
        assert [v async for v in client.volumes.list()] == []

        environment = await client.environments.create(
            f"asv-{uuid.uuid4().hex[:8]}", test_image, command=BOOT
        )
        source = await client.sandboxes.create(environment.id)
        try:
            snap = await source.snapshot(name="async-waited", wait=True, timeout=60)
            assert snap.status == "ready"
            assert [s.id async for s in client.snapshots.list()] == [snap.id]
            await client.snapshots.delete(snap.id)
        finally:
            await source.destroy()


def test_cli_volume_and_snapshot_commands(platform: Platform, tmp_path: Path, test_image: str) -> None:
    sbx = runner(cli_env(platform.api_url, tmp_path))
    ok(sbx("signup", "--email", new_email(), "--password", PASSWORD))
    env_name = f"cli-sv-{uuid.uuid4().hex[:6]}"
    ok(sbx("env", "create", env_name, "--image", test_image, "--command", "sh -c 'exec sleep 3600'", "-q"))
    created = json.loads(ok(sbx("volume", "create", "cli-data", "--size", "8", "--json")))
    assert created["sizeMiB"] == 8
    assert "cli-data" in ok(sbx("volume", "ls"))
    box = ok(sbx("create", env_name, "--volume", f"{created['id']}:/data", "-q")).strip()
    ok(sbx("exec", box, "--", "sh", "-c", "echo x > /data/x && echo y > /y"))
    snap = json.loads(ok(sbx("snapshot", box, "--name", "cli-snap", "--json")))
    assert snap["status"] == "ready"
    assert "cli-snap" in ok(sbx("snapshots"))
    copy = ok(sbx("create", "--snapshot", snap["id"], "-q")).strip()
    assert ok(sbx("exec", copy, "--", "cat", "/y")) == "y\n"
    refused = sbx("volume", "rm", "cli-data")
    assert refused.returncode == 1
    assert "CONFLICT" in refused.stderr
    bad = sbx("create", env_name, "--volume", "no-path")
    assert bad.returncode != 0
    ok(sbx("rm", box))
    ok(sbx("rm", copy))
    ok(sbx("snapshot-rm", snap["id"]))
    ok(sbx("volume", "rm", "cli-data"))
    assert "cli-data" not in ok(sbx("volume", "ls"))
