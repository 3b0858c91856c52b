"""When a command cannot be published, the call answers 503 `UNAVAILABLE` and changes nothing.

An API process is pointed at a NATS server of its own that has no `SBX_CMD` stream, so every
command publish fails, while the database is the shared one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import User
from tests.support.nats_auth import nats_server
from tests.support.platform import Platform, extra_api
from tests.support.sandboxes import create_sandbox


@pytest.fixture(scope="module")
async def cut_off(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    bare = nats_server(tmp_path_factory.mktemp("bare-nats")).start()
    try:
        async with extra_api(
            platform,
            tmp_path_factory.mktemp("cut-off-api"),
            SBX_NATS_URL=bare.url,
            # No stream ever answers here: give up soon rather than wait out an election.
            SBX_COMMAND_PUBLISH_TIMEOUT_SECONDS="1",
        ) as http:
            yield http
    finally:
        bare.stop()


async def test_create_and_verbs_answer_503_and_change_nothing(
    cut_off: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user: User,
    environment: dict[str, Any],
    pg: asyncpg.Connection,
) -> None:
    response = await cut_off.post(
        "/sandboxes", json={"environmentId": environment["id"]}, headers=user.headers
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "UNAVAILABLE"
    assert await pg.fetchval("SELECT count(*) FROM sandboxes WHERE owner_id = $1", user.id) == 0

    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    before = await pg.fetchrow(
        "SELECT last_command_id, last_command_verb FROM sandboxes WHERE id = $1", sandbox["id"]
    )
    for method, path in (("POST", "stop"), ("POST", "restart"), ("DELETE", "")):
        url = f"/sandboxes/{sandbox['id']}" + (f"/{path}" if path else "")
        answer = await cut_off.request(method, url, headers={**user.headers, "Idempotency-Key": f"k-{path}"})
        assert answer.status_code == 503, answer.text
    after = await pg.fetchrow(
        "SELECT last_command_id, last_command_verb FROM sandboxes WHERE id = $1", sandbox["id"]
    )
    assert after == before
    fetched = await client.get(f"/sandboxes/{sandbox['id']}", headers=user.headers)
    assert fetched.json()["data"]["status"] == "running"
    # A 503 is not remembered under its Idempotency-Key: the same key acts once NATS is back.
    retried = await client.post(
        f"/sandboxes/{sandbox['id']}/stop", headers={**user.headers, "Idempotency-Key": "k-stop"}
    )
    assert retried.status_code == 202
