"""`GET /sandboxes/:id/metrics` end to end: the API returns the collector's latest sample while
the sandbox runs, and 409 `NOT_RUNNING` once it stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js.kv import KeyValue

from tests.metrics_collector.samples import sample_of
from tests.support.api import User, create_environment
from tests.support.sandboxes import create_sandbox, destroy_all
from tests.support.waiting import wait_for


@pytest.fixture
async def environment(
    client: httpx.AsyncClient, user: User, test_image: str
) -> AsyncIterator[dict[str, Any]]:
    env = await create_environment(
        client, user, test_image, cpu=0.25, memory=96, command=["sh", "-c", "while :; do :; done"]
    )
    yield env
    await destroy_all(client, user)


async def test_metrics_of_a_running_sandbox_then_not_running(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], kv: KeyValue
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    sid = sandbox["id"]
    url = f"/sandboxes/{sid}/metrics"

    first = await client.get(url, headers=user.headers)
    assert first.status_code == 200, first.text

    async def busy() -> dict[str, Any] | None:
        data: dict[str, Any] = (await client.get(url, headers=user.headers)).json()["data"]
        return data if data["timestamp"] > first.json()["data"]["timestamp"] else None

    metrics = await wait_for(busy, timeout=10, interval=0.2)
    assert metrics["cpu"]["cores"] == 0.25
    assert metrics["cpu"]["usagePercent"] > 30  # busy at its limit
    assert metrics["memory"]["limitBytes"] == 96 * 1024 * 1024
    assert 0 < metrics["memory"]["usageBytes"] < metrics["memory"]["limitBytes"]
    assert metrics["pids"] >= 1

    stopped = await client.post(f"/sandboxes/{sid}/stop?wait=true", headers=user.headers)
    assert stopped.json()["data"]["status"] == "stopped", stopped.text
    refused = await client.get(url, headers=user.headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "NOT_RUNNING"
    assert await sample_of(kv, sid) is None

    started = await client.post(f"/sandboxes/{sid}/start?wait=true", headers=user.headers)
    assert started.json()["data"]["status"] == "running", started.text
    again = await client.get(url, headers=user.headers)
    assert again.status_code == 200, again.text
