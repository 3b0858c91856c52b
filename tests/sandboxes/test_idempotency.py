"""`Idempotency-Key`: a repeat by the same user returns the first answer and acts no more."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.support.api import User, create_environment
from tests.support.commands import CommandTap
from tests.support.sandboxes import create_sandbox, destroy_all


def keyed(user: User, key: str) -> dict[str, str]:
    return {**user.headers, "Idempotency-Key": key}


async def sandbox_ids(client: httpx.AsyncClient, user: User) -> list[str]:
    response = await client.get("/sandboxes?status=" + ",".join(ALL_STATUSES), headers=user.headers)
    return [s["id"] for s in response.json()["data"]]


ALL_STATUSES = ["pending", "starting", "running", "stopping", "stopped", "restarting", "destroying", "failed"]


async def test_repeated_create_returns_the_first_answer(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], command_tap: CommandTap
) -> None:
    key = uuid.uuid4().hex
    body = {"environmentId": environment["id"], "metadata": {"try": "1"}}
    first = await client.post("/sandboxes", json=body, headers=keyed(user, key))
    second = await client.post("/sandboxes", json=body, headers=keyed(user, key))
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    sandbox_id = first.json()["data"]["id"]
    assert await sandbox_ids(client, user) == [sandbox_id]
    await command_tap.settle()
    assert len(command_tap.for_sandbox(sandbox_id)) == 1


async def test_key_reused_for_another_request_is_refused(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    key = uuid.uuid4().hex
    first = await client.post(
        "/sandboxes", json={"environmentId": environment["id"]}, headers=keyed(user, key)
    )
    assert first.status_code == 201
    changed = await client.post(
        "/sandboxes", json={"environmentId": environment["id"], "name": "other"}, headers=keyed(user, key)
    )
    assert changed.status_code == 400
    assert changed.json()["error"]["details"]["errors"][0]["path"] == "Idempotency-Key"
    other_route = await client.post(f"/sandboxes/{first.json()['data']['id']}/stop", headers=keyed(user, key))
    assert other_route.status_code == 400
    assert len(await sandbox_ids(client, user)) == 1


async def test_concurrent_duplicates_act_once(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], command_tap: CommandTap
) -> None:
    key = uuid.uuid4().hex
    body = {"environmentId": environment["id"]}
    answers = await asyncio.gather(
        *(client.post("/sandboxes", json=body, headers=keyed(user, key)) for _ in range(6))
    )
    created = [a for a in answers if a.status_code == 201]
    assert created
    assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
    assert {a.json()["data"]["id"] for a in created} == set(await sandbox_ids(client, user))
    assert len(await sandbox_ids(client, user)) == 1
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.json()["error"]["code"] == "CONFLICT"
    await command_tap.settle()
    assert len(command_tap.for_sandbox(created[0].json()["data"]["id"])) == 1


async def test_keys_are_per_user(
    client: httpx.AsyncClient, user: User, other_user: User, environment: dict[str, Any], test_image: str
) -> None:
    key = uuid.uuid4().hex
    mine = await client.post(
        "/sandboxes", json={"environmentId": environment["id"]}, headers=keyed(user, key)
    )
    other_env = await create_environment(client, other_user, test_image, cpu=0.25, memory=32)
    try:
        theirs = await client.post(
            "/sandboxes", json={"environmentId": other_env["id"]}, headers=keyed(other_user, key)
        )
        assert mine.status_code == theirs.status_code == 201
        assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
    finally:
        await destroy_all(client, other_user)


async def test_repeated_lifecycle_call_acts_once(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], command_tap: CommandTap
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    key = uuid.uuid4().hex
    first = await client.post(f"/sandboxes/{sandbox['id']}/stop?wait=true", headers=keyed(user, key))
    second = await client.post(f"/sandboxes/{sandbox['id']}/stop?wait=true", headers=keyed(user, key))
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert first.json()["data"]["status"] == "stopped"
    fresh = await client.post(f"/sandboxes/{sandbox['id']}/stop", headers=keyed(user, uuid.uuid4().hex))
    assert fresh.status_code == 200  # a new key acts again: stop on stopped is a no-op
    await command_tap.settle()
    assert [c["verb"] for c in command_tap.for_sandbox(sandbox["id"])] == ["create", "stop"]


async def test_malformed_key_is_refused(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    response = await client.post(
        "/sandboxes", json={"environmentId": environment["id"]}, headers=keyed(user, "x" * 256)
    )
    assert response.status_code == 400
    assert await sandbox_ids(client, user) == []
