"""End to end against Docker: a sandbox created over HTTP becomes a hardened container; stop,
start, restart, replicate and destroy really change it (checked with `docker inspect`)."""

from __future__ import annotations

from typing import Any

import docker
import httpx
import pytest
from sbx_common.labels import INSTANCE, OWNER_ID, PLATFORM, SANDBOX_ID, container_name

from tests.support.api import User, set_secret
from tests.support.docker import inspect_container
from tests.support.platform import TEST_INSTANCE, Platform
from tests.support.sandboxes import create_sandbox, exec_in, lifecycle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

SECRET_VALUE = "s3cret-Value-42"


def inspect(docker_client: docker.DockerClient, sandbox_id: str) -> dict[str, Any]:
    attrs = inspect_container(docker_client, container_name(sandbox_id))
    assert attrs is not None, f"no container for sandbox {sandbox_id}"
    return attrs


async def test_sandbox_lifecycle_in_docker(
    client: httpx.AsyncClient,
    user: User,
    environment: dict[str, Any],
    docker_client: docker.DockerClient,
    platform: Platform,
) -> None:
    await set_secret(client, user, environment["id"], "API_TOKEN", SECRET_VALUE)
    sandbox = await create_sandbox(
        client, user, environment["id"], "?wait=true", env={"SHARED": "from-sandbox"}
    )
    sid = sandbox["id"]
    assert sandbox["status"] == "running", sandbox
    assert sandbox["startedAt"] is not None
    assert "API_TOKEN" not in sandbox["env"]
    assert SECRET_VALUE not in str(sandbox)

    # The container Docker really runs.
    attrs = inspect(docker_client, sid)
    host = attrs["HostConfig"]
    assert attrs["State"]["Running"] is True
    assert attrs["Config"]["Image"] == environment["image"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024 * 1024
    assert (host["PidsLimit"] or 0) > 0
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in " ".join(host["SecurityOpt"] or [])
    assert host["Privileged"] is False
    assert not host.get("Binds")
    # No host path: only the in-sandbox agent's named volume, read-only (docs/agent.md).
    assert [(m["Type"], m["Destination"], m["RW"]) for m in attrs["Mounts"]] == [("volume", "/.sbx", False)]
    labels = attrs["Config"]["Labels"]
    assert labels[SANDBOX_ID] == sid
    assert labels[OWNER_ID] == user.id
    assert labels[INSTANCE] == TEST_INSTANCE
    assert PLATFORM in labels

    # Env (merged) and the secret are visible inside.
    result = await exec_in(client, user, sid, 'echo "$GREETING|$SHARED|$API_TOKEN"')
    assert result["stdout"].strip() == f"hello|from-sandbox|{SECRET_VALUE}"
    assert result["exitCode"] == 0

    # The published port answers.
    [endpoint] = sandbox["endpoints"]
    assert endpoint["containerPort"] == 8080
    assert isinstance(endpoint["hostPort"], int)
    async with httpx.AsyncClient(timeout=10) as http:
        # `running` is the container's state, not its server's: that one may still be starting.
        async def answered() -> httpx.Response | None:
            try:
                response = await http.get(endpoint["url"])
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        page = await wait_for(answered, timeout=30, interval=0.2, what="the published port answering")
    assert page.status_code == 200
    assert "hello-from-sandbox" in page.text

    stopped = await lifecycle(client, user, sid, "stop", accepted={202})
    assert stopped["status"] == "stopped"
    assert stopped["stoppedAt"] is not None
    assert inspect(docker_client, sid)["State"]["Running"] is False
    not_running = await client.post(f"/sandboxes/{sid}/exec", json={"command": "true"}, headers=user.headers)
    assert not_running.status_code == 409
    assert not_running.json()["error"]["code"] == "NOT_RUNNING"
    metrics = await client.get(f"/sandboxes/{sid}/metrics", headers=user.headers)
    assert metrics.status_code == 409
    assert metrics.json()["error"]["code"] == "NOT_RUNNING"

    started = await lifecycle(client, user, sid, "start", accepted={202})
    assert started["status"] == "running"
    first_start = inspect(docker_client, sid)["State"]["StartedAt"]
    assert inspect(docker_client, sid)["State"]["Running"] is True

    restarted = await lifecycle(client, user, sid, "restart", accepted={202})
    assert restarted["status"] == "running"
    assert inspect(docker_client, sid)["State"]["StartedAt"] != first_start

    # Replicate: same environment version, the source's env with the overrides merged.
    response = await client.post(
        f"/sandboxes/{sid}/replicate?wait=true",
        json={
            "env": {"SHARED": "from-replica", "ONLY_REPLICA": "yes"},
            "metadata": {"copy": "1"},
            "ttlSeconds": 600,
        },
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    replica = response.json()["data"]
    assert replica["id"] != sid
    assert replica["status"] == "running"
    assert replica["environmentVersion"] == sandbox["environmentVersion"]
    assert replica["env"] == {"GREETING": "hello", "SHARED": "from-replica", "ONLY_REPLICA": "yes"}
    assert replica["metadata"] == {"copy": "1"}
    result = await exec_in(client, user, replica["id"], 'echo "$SHARED|$ONLY_REPLICA|$API_TOKEN"')
    assert result["stdout"].strip() == f"from-replica|yes|{SECRET_VALUE}"
    assert inspect(docker_client, replica["id"])["Id"] != inspect(docker_client, sid)["Id"]

    for target in (sid, replica["id"]):
        gone = await lifecycle(client, user, target, "destroy", accepted={202})
        assert gone["status"] == "destroyed"
        assert gone["destroyedAt"] is not None
        assert inspect_container(docker_client, container_name(target)) is None
    assert SECRET_VALUE not in platform.logs()
