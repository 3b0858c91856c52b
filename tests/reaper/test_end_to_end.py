"""The reaper end to end: through the API, the orchestrator and Docker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import docker
import httpx
import pytest
from nats.aio.client import Client as NatsClient
from sbx_common import labels, subjects
from sbx_common.topology import STREAM_EVT

from tests.support.api import User, create_environment
from tests.support.commands import CommandTap
from tests.support.docker import inspect_container
from tests.support.sandboxes import create_sandbox, destroy_all, get_sandbox
from tests.support.waiting import wait_for


@dataclass
class Api:
    client: httpx.AsyncClient
    user: User
    environment: dict[str, Any]

    async def sandbox(self, sandbox_id: str) -> dict[str, Any]:
        return await get_sandbox(self.client, self.user, sandbox_id)


@pytest.fixture
async def api(client: httpx.AsyncClient, user: User, test_image: str) -> AsyncIterator[Api]:
    """A user of the API with a small environment; their sandboxes are destroyed at the end."""
    env = await create_environment(client, user, test_image, cpu=0.2, memory=64)
    yield Api(client, user, env)
    await destroy_all(client, user)


def container_exists(client: docker.DockerClient, sandbox_id: str) -> bool:
    return inspect_container(client, labels.container_name(sandbox_id)) is not None


@pytest.mark.usefixtures("quick_reaper")
async def test_sandbox_expires_with_reason_ttl_and_its_container_goes(
    api: Api, command_tap: CommandTap, docker_client: docker.DockerClient, nc: NatsClient
) -> None:
    # Two reapers run (the platform's and the quick one): the sandbox still ends once.
    sandbox = await create_sandbox(api.client, api.user, api.environment["id"], "?wait=true", ttlSeconds=10)
    sid = sandbox["id"]
    assert sandbox["status"] == "running"
    assert await asyncio.to_thread(container_exists, docker_client, sid)
    expires_at = datetime.fromisoformat(sandbox["expiresAt"].replace("Z", "+00:00")).timestamp()

    async def ended() -> dict[str, Any] | None:
        current = await api.sandbox(sid)
        return current if current["status"] in ("expired", "destroyed", "failed") else None

    final = await wait_for(ended, timeout=30, interval=0.2)
    assert final["status"] == "expired"
    assert final["statusReason"] == "ttl"
    ttl = [s for s in command_tap.matching(lambda c: str(c.sandbox_id) == sid) if s.command.reason == "ttl"]
    assert ttl
    assert ttl[0].at - expires_at < 2.0
    assert len({s.msg_id for s in ttl}) == 1
    assert not await asyncio.to_thread(container_exists, docker_client, sid)
    info = await nc.jetstream().stream_info(
        STREAM_EVT, subjects_filter=subjects.event(api.user.id, sid, "expired")
    )
    assert sum((info.state.subjects or {}).values()) == 1


@pytest.mark.usefixtures("quick_reaper")
async def test_create_never_published_is_taken_up_and_runs_once(
    api: Api, pg: asyncpg.Connection, docker_client: docker.DockerClient
) -> None:
    # The API wrote the sandbox (and its create command) and crashed before publishing it.
    sid = uuid.uuid4()
    await pg.execute(
        "INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, ttl_seconds,"
        " expires_at, last_command_id, last_command_verb, last_command_at)"
        " VALUES ($1, $2, $3, 1, 'never-published', 3600, now() + interval '1 hour', $4, 'create',"
        " now() - interval '10 seconds')",
        sid,
        uuid.UUID(api.user.id),
        uuid.UUID(api.environment["id"]),
        uuid.uuid4(),
    )

    async def running() -> bool:
        return (await api.sandbox(str(sid)))["status"] == "running"

    await wait_for(running, timeout=30, interval=0.2)
    found = await asyncio.to_thread(
        docker_client.containers.list, filters={"label": f"{labels.SANDBOX_ID}={sid}"}
    )
    assert len(found) == 1


@pytest.mark.usefixtures("quick_reaper")
async def test_ttl_ends_a_sandbox_still_waiting_for_its_health_check(
    api: Api, healthcheck_image: str, docker_client: docker.DockerClient
) -> None:
    # Healthy only once /tmp/ready exists, which this command never makes: the create waits.
    env = await create_environment(
        api.client, api.user, healthcheck_image, cpu=0.1, memory=16, command=["sleep", "600"]
    )
    sandbox = await create_sandbox(api.client, api.user, env["id"], "?wait=true&timeout=3", ttlSeconds=10)
    sid = sandbox["id"]
    assert sandbox["status"] == "starting"
    expires_at = datetime.fromisoformat(sandbox["expiresAt"].replace("Z", "+00:00")).timestamp()

    async def ended() -> dict[str, Any] | None:
        current = await api.sandbox(sid)
        return current if current["status"] in ("expired", "destroyed", "failed") else None

    final = await wait_for(ended, timeout=30, interval=0.2)
    assert (final["status"], final["statusReason"]) == ("expired", "ttl")
    destroyed_at = datetime.fromisoformat(final["destroyedAt"].replace("Z", "+00:00")).timestamp()
    assert destroyed_at - expires_at < 4.0  # the health check's wait gave way within a second or so
    assert not await asyncio.to_thread(container_exists, docker_client, sid)
