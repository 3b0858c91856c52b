"""The sandbox state machine: forbidden transitions are 409 `INVALID_STATE` and publish nothing;
start on running and stop on stopped are 200 no-ops; concurrent calls cannot both pass."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.api import User, create_environment
from tests.support.commands import CommandTap
from tests.support.sandboxes import VERB_METHODS, create_sandbox, get_sandbox, lifecycle_call
from tests.support.waiting import wait_for


async def assert_refused(
    client: httpx.AsyncClient, user: User, command_tap: CommandTap, sandbox_id: str, verb: str
) -> None:
    await command_tap.settle()
    before = len(command_tap.for_sandbox(sandbox_id))
    response = await lifecycle_call(client, user, sandbox_id, verb)
    assert response.status_code == 409, (verb, response.text)
    error = response.json()["error"]
    assert error["code"] == "INVALID_STATE"
    assert error["details"]["action"] == verb
    await command_tap.settle()
    assert len(command_tap.for_sandbox(sandbox_id)) == before, f"{verb} published a command"


async def test_no_ops_and_accepted_verbs_publish_exactly_what_they_say(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], command_tap: CommandTap
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    sid = sandbox["id"]
    assert sandbox["status"] == "running"
    await command_tap.settle()
    [create] = command_tap.for_sandbox(sid)
    assert create["subject"] == "sbx.cmd.local.sandbox.create"
    assert create["msgId"] == create["id"]
    assert create["ownerId"] == user.id

    no_op = await lifecycle_call(client, user, sid, "start")
    assert no_op.status_code == 200
    assert no_op.json()["data"]["status"] == "running"

    stopping = await lifecycle_call(client, user, sid, "stop")
    assert stopping.status_code == 202
    assert stopping.json()["data"]["status"] in {"stopping", "stopped"}
    await wait_for(lambda: _status_is(client, user, sid, "stopped"))

    no_op = await lifecycle_call(client, user, sid, "stop")
    assert no_op.status_code == 200
    assert no_op.json()["data"]["status"] == "stopped"

    await command_tap.settle()
    assert [c["verb"] for c in command_tap.for_sandbox(sid)] == ["create", "stop"]
    stop = command_tap.for_sandbox(sid)[1]
    assert stop["subject"] == "sbx.cmd.local.sandbox.stop"
    assert stop["msgId"] == stop["id"]


async def _status_is(client: httpx.AsyncClient, user: User, sandbox_id: str, status: str) -> bool:
    return (await get_sandbox(client, user, sandbox_id))["status"] == status


async def test_destroyed_sandbox_refuses_every_verb(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], command_tap: CommandTap
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    destroyed = await lifecycle_call(client, user, sandbox["id"], "destroy", "?wait=true")
    assert destroyed.status_code == 202
    assert destroyed.json()["data"]["status"] == "destroyed"
    for verb in VERB_METHODS:
        await assert_refused(client, user, command_tap, sandbox["id"], verb)


async def test_failed_sandbox_allows_only_destroy_and_replicate(
    client: httpx.AsyncClient, user: User, test_image: str, command_tap: CommandTap
) -> None:
    crashing = await create_environment(
        client, user, test_image, cpu=0.25, memory=32, command=["sh", "-c", "exit 3"]
    )
    sandbox = await create_sandbox(client, user, crashing["id"], "?wait=true")
    sid = sandbox["id"]
    await wait_for(lambda: _status_is(client, user, sid, "failed"))
    for verb in ("start", "stop", "restart"):
        await assert_refused(client, user, command_tap, sid, verb)
    replica = await client.post(f"/sandboxes/{sid}/replicate", json={}, headers=user.headers)
    assert replica.status_code == 201, replica.text
    destroyed = await lifecycle_call(client, user, sid, "destroy", "?wait=true")
    assert destroyed.status_code == 202
    assert destroyed.json()["data"]["status"] == "destroyed"
    await client.delete(f"/sandboxes/{replica.json()['data']['id']}?wait=true", headers=user.headers)


async def test_concurrent_calls_cannot_both_pass_the_check(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], command_tap: CommandTap
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    sid = sandbox["id"]
    stops = await asyncio.gather(*(lifecycle_call(client, user, sid, "stop") for _ in range(6)))
    codes = sorted(r.status_code for r in stops)
    assert codes.count(202) == 1, codes
    assert set(codes) <= {200, 202, 409}
    destroys = await asyncio.gather(*(lifecycle_call(client, user, sid, "destroy") for _ in range(6)))
    codes = sorted(r.status_code for r in destroys)
    assert codes.count(202) == 1, codes
    assert set(codes) == {202, 409}
    await command_tap.settle()
    assert [c["verb"] for c in command_tap.for_sandbox(sid)] == ["create", "stop", "destroy"]
    await wait_for(lambda: _status_is(client, user, sid, "destroyed"))
