"""Pause, resume and TTL control end to end: the API's answers, what Docker really shows, and
what the reaper does when a TTL set by PATCH runs out."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from sandbox_platform import AsyncClient, Client
from sbx_common.labels import INSTANCE, OWNER_ID, container_name

from tests.clients.python.support import PASSWORD
from tests.clients.python.test_cli import cli_env, ok, runner
from tests.support.api import User, create_environment, data_of, error_of, error_paths
from tests.support.docker import inspect_container, remove_containers
from tests.support.platform import TEST_INSTANCE, Platform
from tests.support.sandboxes import (
    create_sandbox,
    destroy_all,
    exec_in,
    get_sandbox,
    lifecycle,
    lifecycle_call,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
async def environment(
    client: httpx.AsyncClient, user: User, test_image: str
) -> AsyncIterator[dict[str, Any]]:
    """A small busybox environment of `user` whose sandboxes count in a file every 0.2 s (so a
    frozen sandbox is seen not to move); destroyed with all its sandboxes at the end."""
    env = await create_environment(
        client,
        user,
        test_image,
        cpu=0.5,
        memory=64,
        command=[
            "sh",
            "-c",
            "mkdir -p /tmp; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done",
        ],
    )
    yield env
    await destroy_all(client, user)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")


def docker_state(docker_client: docker.DockerClient, sandbox_id: str) -> dict[str, Any]:
    attrs = inspect_container(docker_client, container_name(sandbox_id))
    assert attrs is not None, f"no container for sandbox {sandbox_id}"
    state: dict[str, Any] = attrs["State"]
    return state


async def running_sandbox(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], **fields: Any
) -> str:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=60", **fields)
    assert sandbox["status"] == "running", sandbox
    return str(sandbox["id"])


async def patch(
    client: httpx.AsyncClient, user: User, sandbox_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"/sandboxes/{sandbox_id}", json=body, headers=user.headers)


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def test_pause_freezes_and_resume_carries_on_with_files_kept(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    sid = await running_sandbox(client, user, environment)
    assert (await exec_in(client, user, sid, "echo kept > /tmp/file"))["exitCode"] == 0

    accepted = await lifecycle_call(client, user, sid, "pause")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["data"]["status"] in {"pausing", "paused"}

    async def is_paused() -> dict[str, Any] | None:
        sandbox = await get_sandbox(client, user, sid)
        return sandbox if sandbox["status"] == "paused" else None

    sandbox = await wait_for(is_paused, timeout=30)
    assert sandbox["statusReason"] is None
    state = docker_state(docker_client, sid)
    assert state["Paused"] is True
    assert state["Running"] is True

    # Frozen: exec is refused, and the counter the sandbox writes does not move.
    refused = await client.post(f"/sandboxes/{sid}/exec", json={"command": "true"}, headers=user.headers)
    error_of(refused, 409, "NOT_RUNNING")
    count_file = await asyncio.to_thread(_read_count, docker_client, sid)
    await asyncio.sleep(0.6)  # three ticks of the sandbox's counter: a frozen counter stays put
    assert await asyncio.to_thread(_read_count, docker_client, sid) == count_file

    # Pause again: not from running.
    again = await lifecycle_call(client, user, sid, "pause")
    assert error_of(again, 409, "INVALID_STATE")["details"]["status"] == "paused"

    resumed = await lifecycle(client, user, sid, "resume", accepted=(202,))
    assert resumed["status"] == "running", resumed
    assert docker_state(docker_client, sid)["Paused"] is False
    result = await exec_in(client, user, sid, "cat /tmp/file")
    assert result["stdout"] == "kept\n"

    async def counting() -> bool:
        return await asyncio.to_thread(_read_count, docker_client, sid) > count_file

    await wait_for(counting, timeout=10)
    # Resume from running is not allowed either.
    error_of(await lifecycle_call(client, user, sid, "resume"), 409, "INVALID_STATE")


def _read_count(docker_client: docker.DockerClient, sandbox_id: str) -> int:
    """The sandbox's counter, read from its filesystem by Docker (works while frozen)."""
    container = docker_client.containers.get(container_name(sandbox_id))
    bits, _ = container.get_archive("/tmp/count")
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as archive:
        member = archive.extractfile("count")
        assert member is not None
        return int(member.read().decode().strip() or 0)


async def test_pause_of_a_stopped_sandbox_and_stop_and_destroy_from_paused(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    first = await running_sandbox(client, user, environment)
    second = await running_sandbox(client, user, environment)

    assert (await lifecycle(client, user, first, "stop"))["status"] == "stopped"
    refused = await lifecycle_call(client, user, first, "pause")
    assert error_of(refused, 409, "INVALID_STATE")["details"] == {"status": "stopped", "action": "pause"}
    error_of(await lifecycle_call(client, user, first, "resume"), 409, "INVALID_STATE")
    assert (await get_sandbox(client, user, first))["status"] == "stopped"

    # Stop from paused: a stopped container, and it starts again.
    assert (await lifecycle(client, user, second, "pause"))["status"] == "paused"
    stopped = await lifecycle(client, user, second, "stop", accepted=(202,))
    assert stopped["status"] == "stopped", stopped
    assert docker_state(docker_client, second)["Running"] is False
    assert (await lifecycle(client, user, second, "start"))["status"] == "running"

    # Destroy from paused: the container is gone.
    assert (await lifecycle(client, user, second, "pause"))["status"] == "paused"
    destroyed = await lifecycle(client, user, second, "destroy", accepted=(202,))
    assert destroyed["status"] == "destroyed", destroyed
    assert inspect_container(docker_client, container_name(second)) is None


async def test_pause_and_resume_converge_on_what_docker_already_did(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    """The orchestrator asks Docker at once and looks only when Docker refuses: a container
    frozen (or thawed) outside the platform is recorded as it is, with its endpoints kept."""
    sid = await running_sandbox(client, user, environment)
    before = await get_sandbox(client, user, sid)
    container = await asyncio.to_thread(docker_client.containers.get, container_name(sid))

    await asyncio.to_thread(container.pause)
    paused = await lifecycle(client, user, sid, "pause", accepted=(202,))
    assert paused["status"] == "paused", paused
    assert docker_state(docker_client, sid)["Paused"] is True

    await asyncio.to_thread(container.unpause)
    resumed = await lifecycle(client, user, sid, "resume", accepted=(202,))
    assert resumed["status"] == "running", resumed
    assert resumed["endpoints"] == before["endpoints"]
    assert (await exec_in(client, user, sid, "echo thawed"))["stdout"] == "thawed\n"


async def test_pause_with_an_idempotency_key_acts_once(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    sid = await running_sandbox(client, user, environment)
    headers = {**user.headers, "Idempotency-Key": uuid.uuid4().hex}
    first = await client.post(f"/sandboxes/{sid}/pause?wait=true", headers=headers)
    second = await client.post(f"/sandboxes/{sid}/pause?wait=true", headers=headers)
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert first.json()["data"]["status"] == "paused"
    # Without the key, the repeat is refused: it is paused already.
    error_of(await client.post(f"/sandboxes/{sid}/pause", headers=user.headers), 409, "INVALID_STATE")


async def test_patch_ttl_extends_and_shortens_and_on_expire_stops_or_pauses(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    destroyed, stopped, paused, extended = [
        await running_sandbox(client, user, environment) for _ in range(4)
    ]
    before = (await get_sandbox(client, user, extended))["expiresAt"]

    # Extend: expiresAt moves a day on, counted from now.
    answer = data_of(await patch(client, user, extended, {"ttlSeconds": 86_400}))
    moved = parse_time(answer["expiresAt"])
    assert moved > parse_time(before)
    assert abs(moved - (time.time() + 86_400)) < 60

    # Shorten to the minimum, with each of the three onExpire choices.
    patched_at = {}
    for sid, on_expire in ((destroyed, "destroy"), (stopped, "stop"), (paused, "pause")):
        body = {"ttlSeconds": 10, "onExpire": on_expire}
        answer = data_of(await patch(client, user, sid, body))
        assert answer["onExpire"] == on_expire
        patched_at[sid] = parse_time(answer["expiresAt"])
        assert abs(patched_at[sid] - (time.time() + 10)) < 5

    async def settled_in(sid: str, status: str) -> dict[str, Any] | None:
        sandbox = await get_sandbox(client, user, sid)
        return sandbox if sandbox["status"] == status else None

    async def ended(sid: str, status: str) -> tuple[dict[str, Any], float]:
        sandbox = await wait_for(lambda: settled_in(sid, status), timeout=30, interval=0.1)
        return sandbox, time.time()

    (gone, gone_at), (halted, halted_at), (frozen, frozen_at) = await asyncio.gather(
        ended(destroyed, "expired"), ended(stopped, "stopped"), ended(paused, "paused")
    )
    assert gone["statusReason"] == "ttl"
    assert gone_at - patched_at[destroyed] < 2.5  # the reaper's 2 s, and this poll's 0.1 s
    for sandbox, at in ((halted, halted_at), (frozen, frozen_at)):
        assert sandbox["statusReason"] == "ttl", sandbox
        assert sandbox["expiresAt"] is None, sandbox
        assert at - patched_at[sandbox["id"]] < 2.5
    assert docker_state(docker_client, stopped)["Running"] is False
    assert docker_state(docker_client, paused)["Paused"] is True
    assert (await get_sandbox(client, user, extended))["status"] == "running"

    # A TTL spent by a pause stays spent: resumed, the sandbox runs on with no expiry until a new
    # TTL is set, which shows again.
    resumed = await lifecycle(client, user, paused, "resume", accepted=(202,))
    assert resumed["status"] == "running", resumed
    assert resumed["expiresAt"] is None, resumed
    renewed = data_of(await patch(client, user, paused, {"ttlSeconds": 600}))
    assert renewed["expiresAt"] is not None
    assert renewed["onExpire"] == "pause"


async def test_patch_metadata_replaces_and_is_filterable(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], metadata={"team": "a", "old": "x"})
    sid = sandbox["id"]
    answer = data_of(await patch(client, user, sid, {"metadata": {"team": "b", "stage": "qa"}}))
    assert answer["metadata"] == {"team": "b", "stage": "qa"}
    assert answer["expiresAt"] == sandbox["expiresAt"]  # a field left out is left as it is

    async def listed(query: str) -> list[str]:
        response = await client.get(f"/sandboxes?{query}", headers=user.headers)
        return [s["id"] for s in data_of(response)]

    assert await listed("metadata.team=b&metadata.stage=qa") == [sid]
    assert await listed("metadata.team=a") == []
    assert await listed("metadata.old=x") == []


async def test_patch_bad_input_and_other_users_and_ended_sandboxes(
    client: httpx.AsyncClient, user: User, other_user: User, environment: dict[str, Any]
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"])
    sid = sandbox["id"]
    for body, field in (
        ({"ttlSeconds": 9}, "ttlSeconds"),
        ({"ttlSeconds": 604_801}, "ttlSeconds"),
        ({"onExpire": "explode"}, "onExpire"),
        ({"metadata": {f"k{i}": "v" for i in range(33)}}, "metadata"),
        ({"metadata": {"bad key!": "v"}}, "metadata"),
    ):
        response = await patch(client, user, sid, body)
        error_of(response, 400, "VALIDATION_ERROR")
        assert any(field in path for path in error_paths(response)), (body, response.text)
    unknown_on_create = await client.post(
        "/sandboxes", json={"environmentId": environment["id"], "onExpire": "never"}, headers=user.headers
    )
    error_of(unknown_on_create, 400, "VALIDATION_ERROR")
    unchanged = await get_sandbox(client, user, sid)
    assert unchanged["expiresAt"] == sandbox["expiresAt"]
    assert unchanged["onExpire"] == "destroy"

    # Another user's sandbox does not exist for them.
    error_of(await patch(client, other_user, sid, {"ttlSeconds": 60}), 404, "NOT_FOUND")
    error_of(await lifecycle_call(client, other_user, sid, "pause"), 404, "NOT_FOUND")
    error_of(await lifecycle_call(client, other_user, sid, "resume"), 404, "NOT_FOUND")

    # Destroyed: no more changes.
    await lifecycle(client, user, sid, "destroy")
    refused = await patch(client, user, sid, {"ttlSeconds": 60})
    assert error_of(refused, 409, "INVALID_STATE")["details"]["status"] == "destroyed"


def sdk_user(platform: Platform) -> Client:
    client = Client(base_url=platform.api_url)
    client.auth.signup(f"lc-{uuid.uuid4().hex[:10]}@example.com", PASSWORD)
    return client


def test_python_sdk_and_cli_pause_resume_and_update(
    platform: Platform, test_image: str, tmp_path: Path
) -> None:
    with sdk_user(platform) as sdk:
        environment = sdk.environments.create(
            name=f"lc-{uuid.uuid4().hex[:8]}", image=test_image, command=["sh", "-c", "sleep 3600"]
        )
        with sdk.sandboxes.create(environment.id, on_expire="stop", ttl_seconds=600) as sandbox:
            assert sandbox.status == "running"
            assert sandbox.on_expire == "stop"
            assert sandbox.pause().status == "paused"
            assert sandbox.resume().status == "running"
            updated = sandbox.update(ttl_seconds=7200, metadata={"k": "v"}, on_expire="pause")
            assert updated is sandbox
            assert sandbox.metadata == {"k": "v"}
            assert sandbox.on_expire == "pause"
            assert sandbox.expires_at is not None
            assert sandbox.expires_at.timestamp() > time.time() + 7000

            async def with_async_client() -> None:
                async with AsyncClient(base_url=platform.api_url, token=sdk.token) as client:
                    same = await client.sandboxes.get(sandbox.id)
                    assert (await same.pause()).status == "paused"
                    assert (await same.resume()).status == "running"
                    assert (await same.update(metadata={})).metadata == {}

            asyncio.run(with_async_client())

            # The CLI, as a person would run it.
            env = cli_env(platform.api_url, tmp_path)
            env["SBX_API_KEY"] = sdk.api_keys.create("cli").key
            run = runner(env)
            assert json.loads(ok(run("pause", sandbox.id, "--json")))["status"] == "paused"
            refused = run("exec", sandbox.id, "--", "true")
            assert refused.returncode == 1
            assert "NOT_RUNNING" in refused.stderr
            assert json.loads(ok(run("resume", sandbox.id, "--json")))["status"] == "running"
            shown = json.loads(ok(run("ttl", sandbox.id, "60", "--json")))
            assert abs(parse_time(shown["expiresAt"]) - (time.time() + 60)) < 30
            shown = json.loads(ok(run("update", sandbox.id, "--on-expire", "destroy", "-m", "a=b", "--json")))
            assert shown["onExpire"] == "destroy"
            assert shown["metadata"] == {"a": "b"}
            bad = run("ttl", sandbox.id, "5")
            assert bad.returncode != 0
            assert "VALIDATION_ERROR" in bad.stderr
