"""Helpers of the sandbox tests: environments and sandboxes over HTTP, a command spy on NATS,
and an extra API process with its own quotas."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sbx_common import natsconn, subjects
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import free_port, wait_for_port

from tests.harness import Platform, User

SETTLED = {"running", "stopped", "destroyed", "expired", "failed"}


async def create_environment(
    client: httpx.AsyncClient, user: User, image: str, **fields: Any
) -> dict[str, Any]:
    body = {"name": f"env-{uuid.uuid4().hex[:8]}", "image": image, **fields}
    response = await client.post("/environments", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def set_secret(
    client: httpx.AsyncClient, user: User, environment_id: str, key: str, value: str
) -> None:
    response = await client.post(
        f"/environments/{environment_id}/secrets", json={"key": key, "value": value}, headers=user.headers
    )
    assert response.status_code == 201, response.text


async def create_sandbox(
    client: httpx.AsyncClient, user: User, environment_id: str, query: str = "", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/sandboxes{query}", json={"environmentId": environment_id, **fields}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def get_sandbox(client: httpx.AsyncClient, user: User, sandbox_id: str) -> dict[str, Any]:
    response = await client.get(f"/sandboxes/{sandbox_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def destroy_all(client: httpx.AsyncClient, user: User) -> None:
    """Destroy every sandbox of the user that is not gone yet, and wait until they are."""
    response = await client.get("/sandboxes?limit=500", headers=user.headers)
    if response.status_code != 200:
        return
    sandboxes = response.json()["data"]
    await asyncio.gather(
        *(
            client.delete(f"/sandboxes/{s['id']}?wait=true&timeout=60", headers=user.headers)
            for s in sandboxes
            if s["status"] != "destroying"
        ),
        *(wait_until_gone(client, user, s["id"]) for s in sandboxes if s["status"] == "destroying"),
    )


async def wait_until_gone(
    client: httpx.AsyncClient, user: User, sandbox_id: str, timeout: float = 60
) -> None:
    """Wait for a sandbox that is already being destroyed to be gone."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if (await get_sandbox(client, user, sandbox_id))["status"] in {"destroyed", "expired"}:
            return
        await asyncio.sleep(0.2)


@dataclass
class CommandSpy:
    """Every command published on `sbx.cmd.sandbox.*`, seen through a core NATS subscription."""

    nc: NatsClient
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def _on(self, msg: Msg) -> None:
        self.seen.append(
            {"subject": msg.subject, "msgId": (msg.headers or {}).get("Nats-Msg-Id"), **json.loads(msg.data)}
        )

    async def settle(self) -> None:
        """Make sure everything published before now has reached us."""
        await self.nc.flush()
        await asyncio.sleep(0.05)

    def for_sandbox(self, sandbox_id: str) -> list[dict[str, Any]]:
        return [c for c in self.seen if c["sandboxId"] == sandbox_id]


@asynccontextmanager
async def command_spy(nats_url: str) -> AsyncIterator[CommandSpy]:
    nc = await natsconn.connect(nats_url, "tests-command-spy")
    spy = CommandSpy(nc)
    await nc.subscribe(subjects.CMD_ALL, cb=spy._on)
    await nc.flush()
    try:
        yield spy
    finally:
        await nc.close()


@asynccontextmanager
async def extra_api(platform: Platform, log_dir: Path, **settings: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process on the same database and NATS, with its own settings (e.g. quotas)."""
    port = free_port()
    env = {**platform.base_env, "SBX_API_PORT": str(port), **settings}
    process = ServiceProcess("api", env, log_file=log_dir / f"api-{port}.log").start()
    try:
        await asyncio.to_thread(wait_for_port, port, 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        process.stop()
