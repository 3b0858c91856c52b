"""GET /sandboxes: filters (status, environmentId, metadata.<key>), cursor pagination, and the
sandbox object's exact shape."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import User, create_environment
from tests.support.sandboxes import create_sandbox

SANDBOX_KEYS = {
    "id",
    "name",
    "environmentId",
    "environmentVersion",
    "status",
    "statusReason",
    "image",
    "cpu",
    "memory",
    "runtime",
    "disk",
    "env",
    "metadata",
    "endpoints",
    "network",
    "createdAt",
    "startedAt",
    "stoppedAt",
    "expiresAt",
    "destroyedAt",
    "onExpire",
    "hostId",
}


async def list_ids(client: httpx.AsyncClient, user: User, query: str = "") -> list[str]:
    response = await client.get(f"/sandboxes{query}", headers=user.headers)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["data"]]


async def test_created_sandbox_has_the_contract_shape(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], test_image: str
) -> None:
    sandbox = await create_sandbox(
        client,
        user,
        environment["id"],
        name="shape",
        ttlSeconds=120,
        env={"SHARED": "from-sandbox", "EXTRA": "1"},
        metadata={"team": "core"},
    )
    assert set(sandbox) == SANDBOX_KEYS
    assert sandbox["name"] == "shape"
    assert sandbox["environmentId"] == environment["id"]
    assert sandbox["environmentVersion"] == 1
    assert sandbox["status"] in {"pending", "starting", "running"}
    assert sandbox["image"] == test_image
    assert sandbox["cpu"] == 0.5
    assert sandbox["memory"] == 64
    assert sandbox["env"] == {"GREETING": "hello", "SHARED": "from-sandbox", "EXTRA": "1"}
    assert sandbox["metadata"] == {"team": "core"}
    assert sandbox["createdAt"].endswith("Z")
    assert sandbox["destroyedAt"] is None
    fetched = await client.get(f"/sandboxes/{sandbox['id']}", headers=user.headers)
    assert fetched.json()["data"]["expiresAt"] == sandbox["expiresAt"]


async def test_defaults_name_and_ttl(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    from datetime import datetime

    sandbox = await create_sandbox(client, user, environment["id"])
    assert sandbox["name"].startswith(environment["name"] + "-")
    lifetime = datetime.fromisoformat(sandbox["expiresAt"]) - datetime.fromisoformat(sandbox["createdAt"])
    assert lifetime.total_seconds() == 3600


async def test_filters_by_environment_metadata_and_status(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], test_image: str
) -> None:
    other_env = await create_environment(client, user, test_image, cpu=0.25, memory=32)
    a = await create_sandbox(
        client, user, environment["id"], "?wait=true", metadata={"team": "a", "tier": "1"}
    )
    b = await create_sandbox(
        client, user, environment["id"], "?wait=true", metadata={"team": "b", "tier": "1"}
    )
    c = await create_sandbox(client, user, other_env["id"], "?wait=true", metadata={"team": "a"})
    assert {a["status"], b["status"], c["status"]} == {"running"}

    assert set(await list_ids(client, user)) == {a["id"], b["id"], c["id"]}
    assert set(await list_ids(client, user, f"?environmentId={environment['id']}")) == {a["id"], b["id"]}
    assert set(await list_ids(client, user, "?metadata.team=a")) == {a["id"], c["id"]}
    assert await list_ids(client, user, "?metadata.team=a&metadata.tier=1") == [a["id"]]
    assert await list_ids(client, user, "?metadata.team=zzz") == []

    destroyed = await client.delete(f"/sandboxes/{b['id']}?wait=true", headers=user.headers)
    assert destroyed.json()["data"]["status"] == "destroyed"
    assert set(await list_ids(client, user)) == {a["id"], c["id"]}
    assert await list_ids(client, user, "?status=destroyed") == [b["id"]]
    assert set(await list_ids(client, user, "?status=running,destroyed")) == {a["id"], b["id"], c["id"]}
    assert await list_ids(client, user, "?status=stopped") == []
    # A destroyed sandbox can still be read by id.
    fetched = await client.get(f"/sandboxes/{b['id']}", headers=user.headers)
    assert fetched.json()["data"]["status"] == "destroyed"
    assert fetched.json()["data"]["destroyedAt"] is not None


async def test_pages_follow_the_cursor_newest_first(
    client: httpx.AsyncClient, user: User, other_user: User, environment: dict[str, Any]
) -> None:
    created = [(await create_sandbox(client, user, environment["id"]))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/sandboxes{query}", headers=user.headers)
        body = response.json()
        assert len(body["data"]) <= 2
        seen += [s["id"] for s in body["data"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))
    # Another user sees none of them.
    assert await list_ids(client, other_user) == []
