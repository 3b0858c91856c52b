"""Per-user quotas (sandboxes not terminal, CPU and memory totals) and the create rate limit,
checked against an API process of their own with small limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.api import User, create_environment
from tests.support.platform import Platform, extra_api

MAX_SANDBOXES = 3
MAX_CPU = 1.0
MAX_MEMORY = 160
CREATE_RATE = 6


@pytest.fixture(scope="module")
async def limited(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with extra_api(
        platform,
        tmp_path_factory.mktemp("limited-api"),
        SBX_MAX_SANDBOXES_PER_USER=str(MAX_SANDBOXES),
        SBX_MAX_CPU_PER_USER=str(MAX_CPU),
        SBX_MAX_MEMORY_PER_USER=str(MAX_MEMORY),
        SBX_SANDBOX_CREATE_RATE_LIMIT=str(CREATE_RATE),
    ) as http:
        yield http


async def create(http: httpx.AsyncClient, user: User, environment_id: str) -> httpx.Response:
    return await http.post("/sandboxes", json={"environmentId": environment_id}, headers=user.headers)


def quota_of(response: httpx.Response) -> str:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert error["message"]
    return str(error["details"]["quota"])


async def test_sandbox_count_quota_counts_what_is_not_terminal(
    limited: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user: User,
    test_image: str,
    environment: dict[str, Any],
) -> None:
    small = await create_environment(client, user, test_image, cpu=0.1, memory=16)
    made = [await create(limited, user, small["id"]) for _ in range(MAX_SANDBOXES)]
    assert [r.status_code for r in made] == [201] * MAX_SANDBOXES
    assert quota_of(await create(limited, user, small["id"])) == "sandboxes"
    replica = await limited.post(f"/sandboxes/{made[0].json()['data']['id']}/replicate", headers=user.headers)
    assert quota_of(replica) == "sandboxes"
    gone = await limited.delete(f"/sandboxes/{made[0].json()['data']['id']}?wait=true", headers=user.headers)
    assert gone.json()["data"]["status"] == "destroyed"
    assert (await create(limited, user, small["id"])).status_code == 201


async def test_quota_holds_under_concurrent_creates(
    limited: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user: User,
    test_image: str,
    environment: dict[str, Any],
) -> None:
    small = await create_environment(client, user, test_image, cpu=0.1, memory=16)
    answers = await asyncio.gather(*(create(limited, user, small["id"]) for _ in range(CREATE_RATE)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * MAX_SANDBOXES + [429] * (CREATE_RATE - MAX_SANDBOXES), [a.text for a in answers]
    listed = await client.get("/sandboxes", headers=user.headers)
    assert len(listed.json()["data"]) == MAX_SANDBOXES


async def test_cpu_and_memory_totals(
    limited: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user: User,
    test_image: str,
    environment: dict[str, Any],
) -> None:
    cpu_heavy = await create_environment(client, user, test_image, cpu=0.75, memory=16)
    memory_heavy = await create_environment(client, user, test_image, cpu=0.1, memory=128)
    assert (await create(limited, user, cpu_heavy["id"])).status_code == 201
    refused = await create(limited, user, cpu_heavy["id"])
    assert quota_of(refused) == "cpu"
    assert "CPU" in refused.json()["error"]["message"]
    assert (await create(limited, user, memory_heavy["id"])).status_code == 201
    refused = await create(limited, user, memory_heavy["id"])
    assert quota_of(refused) == "memory"
    assert "MiB" in refused.json()["error"]["message"]


async def test_create_rate_limit_counts_creates_and_replicates(
    limited: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user: User,
    test_image: str,
    environment: dict[str, Any],
) -> None:
    small = await create_environment(client, user, test_image, cpu=0.1, memory=16)
    first = await create(limited, user, small["id"])
    assert first.status_code == 201
    assert first.headers["RateLimit-Limit"] == str(CREATE_RATE)
    assert first.headers["RateLimit-Remaining"] == str(CREATE_RATE - 1)
    attempts = [await create(limited, user, small["id"]) for _ in range(CREATE_RATE - 2)]
    replica = await limited.post(f"/sandboxes/{first.json()['data']['id']}/replicate", headers=user.headers)
    assert {a.status_code for a in [*attempts, replica]} <= {201, 429}
    limited_answer = await create(limited, user, small["id"])
    assert limited_answer.status_code == 429, limited_answer.text
    assert limited_answer.json()["error"]["code"] == "RATE_LIMITED"
    assert int(limited_answer.headers["Retry-After"]) >= 1
    assert limited_answer.json()["error"]["details"]["retryAfter"] >= 1
    # Reads are not limited by it.
    assert (await limited.get("/sandboxes", headers=user.headers)).status_code == 200
