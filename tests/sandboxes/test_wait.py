"""`?wait=true&timeout=`: the call returns once the sandbox has settled, or at the timeout with
the status it then has."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.harness import User
from tests.sandboxes.support import create_environment


async def test_wait_returns_the_settled_sandbox(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    response = await client.post(
        "/sandboxes?wait=true&timeout=60", json={"environmentId": environment["id"]}, headers=user.headers
    )
    assert response.status_code == 201
    sandbox = response.json()["data"]
    assert sandbox["status"] == "running"
    assert sandbox["startedAt"] is not None
    assert sandbox["endpoints"][0]["containerPort"] == 8080

    response = await client.post(f"/sandboxes/{sandbox['id']}/restart?wait=true", headers=user.headers)
    assert response.status_code == 202
    assert response.json()["data"]["status"] == "running"


async def test_wait_gives_up_at_the_timeout(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    started = time.monotonic()
    response = await client.post(
        "/sandboxes?wait=true&timeout=0", json={"environmentId": environment["id"]}, headers=user.headers
    )
    assert response.status_code == 201
    assert response.json()["data"]["status"] in {"pending", "starting", "running"}
    assert time.monotonic() - started < 10.0  # far below the default 30 s wait


async def test_wait_settles_on_failed(client: httpx.AsyncClient, user: User, test_image: str) -> None:
    missing = await create_environment(client, user, "sbx-no-such-image:never", cpu=0.1, memory=16)
    response = await client.post(
        "/sandboxes?wait=true&timeout=120", json={"environmentId": missing["id"]}, headers=user.headers
    )
    assert response.status_code == 201
    sandbox = response.json()["data"]
    assert sandbox["status"] == "failed"
    assert sandbox["statusReason"]
    gone = await client.delete(f"/sandboxes/{sandbox['id']}?wait=true", headers=user.headers)
    assert gone.json()["data"]["status"] == "destroyed"
