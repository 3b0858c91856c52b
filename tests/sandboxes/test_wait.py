"""`?wait=true&timeout=`: the call returns once the sandbox has settled, or at the timeout with
the status it then has."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.api import User, create_environment
from tests.support.sandboxes import destroy_all


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
    client: httpx.AsyncClient, user: User, healthcheck_image: str
) -> None:
    # Its health check passes only once /tmp/ready exists, which this command never makes: the
    # sandbox stays `starting` (for the image's 60 s start period), so only the timeout ends the wait.
    never_ready = await create_environment(
        client, user, healthcheck_image, cpu=0.1, memory=16, command=["sleep", "600"]
    )
    try:
        started = time.monotonic()
        response = await client.post(
            "/sandboxes?wait=true&timeout=2", json={"environmentId": never_ready["id"]}, headers=user.headers
        )
        waited = time.monotonic() - started
        assert response.status_code == 201
        assert response.json()["data"]["status"] == "starting"
        assert 1.9 <= waited < 10.0  # the timeout asked for, far below the default 30 s
        # timeout=0 does not wait at all.
        started = time.monotonic()
        response = await client.post(
            "/sandboxes?wait=true&timeout=0", json={"environmentId": never_ready["id"]}, headers=user.headers
        )
        assert response.status_code == 201
        assert response.json()["data"]["status"] in {"pending", "starting"}
        # Only the time a create takes, a few seconds at most on a busy machine: far below the
        # default 30 s wait.
        assert time.monotonic() - started < 5
    finally:
        await destroy_all(client, user)


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
