"""API keys: created once in clear, stored as a hash, listed without the key, revoked at once."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.support.api import RFC3339_UTC, User, data_of, error_of, error_paths


async def create_key(client: httpx.AsyncClient, user: User, name: str = "Development Key") -> dict[str, str]:
    return data_of(await client.post("/api-keys", json={"name": name}, headers=user.headers), 201)  # type: ignore[no-any-return]


async def test_create_use_list_and_revoke_a_key(
    client: httpx.AsyncClient, user: User, pg: asyncpg.Connection
) -> None:
    created = await create_key(client, user)
    assert set(created) == {"id", "name", "keyPrefix", "key", "createdAt", "expiresAt"}
    assert created["name"] == "Development Key"
    assert created["key"].startswith("sk_")
    assert len(created["key"]) >= 3 + 43
    assert created["key"].startswith(created["keyPrefix"])
    assert created["keyPrefix"] != created["key"]
    assert RFC3339_UTC.match(created["createdAt"])

    listed = await client.get("/api-keys", headers=user.headers)
    assert listed.json()["nextCursor"] is None
    [item] = data_of(listed)
    assert item == {k: created[k] for k in ("id", "name", "keyPrefix", "createdAt", "expiresAt")} | {
        "lastUsedAt": None
    }
    assert created["key"] not in listed.text

    key_headers = {"Authorization": f"Bearer {created['key']}"}
    me = data_of(await client.get("/auth/me", headers=key_headers))
    assert me["id"] == user.id
    [item] = data_of(await client.get("/api-keys", headers=user.headers))
    assert RFC3339_UTC.match(item["lastUsedAt"])

    # Only the prefix and a hash are stored.
    row = await pg.fetchrow("SELECT * FROM api_keys WHERE id = $1", uuid.UUID(created["id"]))
    assert created["key"] not in " ".join(str(v) for v in row.values())

    deleted = data_of(await client.delete(f"/api-keys/{created['id']}", headers=user.headers))
    assert deleted == {"id": created["id"], "deleted": True}
    error_of(await client.get("/auth/me", headers=key_headers), 401, "UNAUTHORIZED")
    assert data_of(await client.get("/api-keys", headers=user.headers)) == []
    error_of(await client.delete(f"/api-keys/{created['id']}", headers=user.headers), 404, "NOT_FOUND")


async def test_keys_of_another_user_and_malformed_ids_are_not_found(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    theirs = await create_key(client, other_user)
    for key_id in (theirs["id"], str(uuid.uuid4()), "not-a-uuid", "1"):
        error_of(await client.delete(f"/api-keys/{key_id}", headers=user.headers), 404, "NOT_FOUND")
    assert data_of(await client.get("/api-keys", headers=user.headers)) == []
    # Theirs still works.
    assert (
        await client.get("/auth/me", headers={"Authorization": f"Bearer {theirs['key']}"})
    ).status_code == 200


async def test_key_name_is_validated(client: httpx.AsyncClient, user: User) -> None:
    for body, path in (
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "x": 1}, "x"),
    ):
        assert error_paths(await client.post("/api-keys", json=body, headers=user.headers)) == [path], body
    error_of(await client.post("/api-keys", json={"name": "k"}), 401, "UNAUTHORIZED")


async def test_api_key_list_is_paginated(client: httpx.AsyncClient, user: User) -> None:
    ids = [(await create_key(client, user, f"key {i}"))["id"] for i in range(3)]
    first = await client.get("/api-keys", params={"limit": 2}, headers=user.headers)
    cursor = first.json()["nextCursor"]
    assert [k["id"] for k in data_of(first)] == ids[:2]
    assert cursor
    second = await client.get("/api-keys", params={"limit": 2, "cursor": cursor}, headers=user.headers)
    assert [k["id"] for k in data_of(second)] == ids[2:]
    assert second.json()["nextCursor"] is None

    for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "garbage!"}, {"cursor": "WzFd"}):
        response = await client.get("/api-keys", params=params, headers=user.headers)
        assert error_paths(response) == [next(iter(params))], params
