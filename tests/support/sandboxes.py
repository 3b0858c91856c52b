"""Sandboxes through the API: create one (and wait for it to run), lifecycle calls with `?wait`,
exec, and destroying everything a user made when a test ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.api import User, create_environment
from tests.support.waiting import ConditionTimeout, wait_for

# Statuses a sandbox stays in until it is told otherwise.
SETTLED = frozenset({"running", "stopped", "paused", "destroyed", "expired", "failed"})
VERB_METHODS = {
    "start": "POST",
    "stop": "POST",
    "restart": "POST",
    "pause": "POST",
    "resume": "POST",
    "destroy": "DELETE",
}


async def create_sandbox(
    client: httpx.AsyncClient, user: User, environment_id: str, query: str = "", **fields: Any
) -> dict[str, Any]:
    """POST /sandboxes{query} (e.g. `?wait=true`): the sandbox as the 201 answer shows it."""
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


async def lifecycle_call(
    client: httpx.AsyncClient, user: User, sandbox_id: str, verb: str, query: str = ""
) -> httpx.Response:
    """start, stop, restart, pause, resume (POST /sandboxes/:id/<verb>) or destroy (DELETE /sandboxes/:id),
    answered as it is."""
    path = f"/sandboxes/{sandbox_id}" if verb == "destroy" else f"/sandboxes/{sandbox_id}/{verb}"
    return await client.request(VERB_METHODS[verb], path + query, headers=user.headers)


async def lifecycle(
    client: httpx.AsyncClient,
    user: User,
    sandbox_id: str,
    verb: str,
    accepted: Collection[int] = (200, 202),
) -> dict[str, Any]:
    """A lifecycle call with `?wait=true`: the sandbox once it has settled. `accepted` are the
    answers the caller allows (202 acted, 200 nothing to do)."""
    response = await lifecycle_call(client, user, sandbox_id, verb, "?wait=true")
    assert response.status_code in accepted, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def exec_in(
    client: httpx.AsyncClient, user: User, sandbox_id: str, command: Any, **extra: Any
) -> dict[str, Any]:
    """Run `command` (a shell string or an argument list) with POST /sandboxes/:id/exec."""
    response = await client.post(
        f"/sandboxes/{sandbox_id}/exec", json={"command": command, **extra}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]
    return result


async def run_sandbox(client: httpx.AsyncClient, user: User, image: str, script: str) -> dict[str, Any]:
    """A running sandbox of `user` whose command is `sh -c <script>`."""
    env = await create_environment(client, user, image, cpu=0.5, memory=64, command=["sh", "-c", script])
    sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=60")
    assert sandbox["status"] == "running", sandbox
    return sandbox


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
    """Wait (at most `timeout`) for a sandbox that is already being destroyed to be gone. It is
    clean-up: what is still there then is left to the Docker safety net, not failed on."""

    async def gone() -> bool:
        return (await get_sandbox(client, user, sandbox_id))["status"] in {"destroyed", "expired"}

    with contextlib.suppress(ConditionTimeout):
        await wait_for(gone, timeout=timeout, interval=0.2)


@dataclass
class Sandboxes:
    """Makes running sandboxes (through the API) and destroys them when the test ends."""

    client: httpx.AsyncClient
    image: str
    owners: list[User] = field(default_factory=list)

    async def run(self, user: User, script: str) -> dict[str, Any]:
        if user not in self.owners:
            self.owners.append(user)
        return await run_sandbox(self.client, user, self.image, script)

    async def destroy_all(self) -> None:
        for user in self.owners:
            await destroy_all(self.client, user)
