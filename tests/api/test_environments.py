"""Environments: immutable versions, validation, names, quota, ownership and deletion."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg
import httpx

from tests.support.api import RFC3339_UTC, User, create_environment, data_of, error_of, error_paths

ENV_KEYS = {
    "id",
    "name",
    "version",
    "image",
    "cpu",
    "memory",
    "ports",
    "env",
    "command",
    "network",
    "runtime",
    "disk",
    "warmPool",
    "secrets",
    "createdAt",
    "updatedAt",
}
VERSION_KEYS = {
    "version",
    "image",
    "cpu",
    "memory",
    "ports",
    "env",
    "command",
    "network",
    "runtime",
    "disk",
    "warmPool",
    "createdAt",
}


async def test_create_with_defaults_and_read_back(client: httpx.AsyncClient, user: User) -> None:
    env = await create_environment(client, user, name="plain")
    assert set(env) == ENV_KEYS
    assert (env["name"], env["version"], env["cpu"], env["memory"]) == ("plain", 1, 1.0, 256)
    assert (env["ports"], env["env"], env["command"], env["secrets"]) == ([], {}, None, [])
    assert (env["runtime"], env["disk"], env["warmPool"]) == ("runc", 2048, 0)
    assert RFC3339_UTC.match(env["createdAt"])
    assert RFC3339_UTC.match(env["updatedAt"])
    assert data_of(await client.get(f"/environments/{env['id']}", headers=user.headers)) == env
    listed = await client.get("/environments", headers=user.headers)
    assert data_of(listed) == [env]
    assert listed.json()["nextCursor"] is None


async def test_spec_demo_environment(client: httpx.AsyncClient, user: User) -> None:
    body: dict[str, Any] = {
        "name": "nginx-demo",
        "image": "nginx:alpine",
        "cpu": 1,
        "memory": 256,
        "ports": [{"container": 80, "host": 8080}, {"container": 443}],
        "env": {"NGINX_HOST": "localhost"},
        "command": ["nginx", "-g", "daemon off;"],
    }
    env = data_of(await client.post("/environments", json=body, headers=user.headers), 201)
    assert {k: env[k] for k in body} == body


async def test_put_adds_a_version_and_never_changes_earlier_ones(
    client: httpx.AsyncClient, user: User
) -> None:
    env = await create_environment(
        client, user, env={"A": "1"}, command=["sleep", "60"], ports=[{"container": 80}]
    )
    url = f"/environments/{env['id']}"
    v2 = data_of(await client.put(url, json={"memory": 512, "env": {"B": "2"}}, headers=user.headers))
    assert (v2["version"], v2["memory"], v2["env"], v2["command"], v2["ports"]) == (
        2,
        512,
        {"B": "2"},
        ["sleep", "60"],
        [{"container": 80}],
    )
    assert (v2["id"], v2["name"], v2["createdAt"]) == (env["id"], env["name"], env["createdAt"])
    v3 = data_of(await client.put(url, json={"command": None, "ports": [], "cpu": 0.5}, headers=user.headers))
    assert (v3["version"], v3["command"], v3["ports"], v3["cpu"], v3["memory"]) == (3, None, [], 0.5, 512)
    v4 = data_of(await client.put(url, json={}, headers=user.headers))
    assert v4["version"] == 4

    versions = await client.get(f"{url}/versions", headers=user.headers)
    items = data_of(versions)
    assert [v["version"] for v in items] == [1, 2, 3, 4]
    assert all(set(v) == VERSION_KEYS for v in items)
    assert {k: items[0][k] for k in ("memory", "env", "command", "ports")} == {
        "memory": 256,
        "env": {"A": "1"},
        "command": ["sleep", "60"],
        "ports": [{"container": 80}],
    }
    page = await client.get(f"{url}/versions", params={"limit": 3}, headers=user.headers)
    rest = await client.get(
        f"{url}/versions", params={"cursor": page.json()["nextCursor"]}, headers=user.headers
    )
    assert [v["version"] for v in data_of(rest)] == [4]
    assert data_of(await client.get(url, headers=user.headers)) == v4


async def test_put_rejects_null_for_required_fields_and_unknown_fields(
    client: httpx.AsyncClient, user: User
) -> None:
    env = await create_environment(client, user)
    url = f"/environments/{env['id']}"
    for body, path in (
        ({"image": None}, "image"),
        ({"cpu": None}, "cpu"),
        ({"memory": None}, "memory"),
        ({"ports": None}, "ports"),
        ({"env": None}, "env"),
        ({"name": "renamed"}, "name"),
    ):
        assert error_paths(await client.put(url, json=body, headers=user.headers)) == [path], body
    assert data_of(await client.get(url, headers=user.headers))["version"] == 1


async def test_definition_is_validated_field_by_field(client: httpx.AsyncClient, user: User) -> None:
    cores = os.cpu_count() or 1
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cpu": 0}, "cpu"),
        ({"cpu": -1}, "cpu"),
        ({"cpu": 0.001}, "cpu"),
        ({"cpu": cores + 0.5}, "cpu"),
        ({"cpu": "1"}, "cpu"),
        ({"cpu": True}, "cpu"),
        ({"memory": 15}, "memory"),
        ({"memory": 65537}, "memory"),
        ({"memory": 256.5}, "memory"),
        ({"ports": [{"container": 0}]}, "ports.0.container"),
        ({"ports": [{"container": 65536}]}, "ports.0.container"),
        ({"ports": [{"container": 80, "host": 80}]}, "ports.0.host"),
        ({"ports": [{"container": 80, "host": 65536}]}, "ports.0.host"),
        ({"ports": [{"container": 80}, {"container": 80, "host": 8080}]}, "ports"),
        ({"ports": [{"container": 80, "host": 8080}, {"container": 81, "host": 8080}]}, "ports"),
        ({"ports": [{"container": 80, "protocol": "udp"}]}, "ports.0.protocol"),
        ({"env": {"1BAD": "x"}}, "env.1BAD.[key]"),
        ({"env": {"GOOD": 1}}, "env.GOOD"),
        ({"env": {"NUL": "a\u0000b"}}, "env.NUL"),
        ({"env": ["A=1"]}, "env"),
        ({"command": []}, "command"),
        ({"command": "sleep 1"}, "command"),
        ({"command": ["sleep", 1]}, "command.1"),
        ({"image": "Not An Image!"}, "image"),
        ({"image": ""}, "image"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"unknown": 1}, "unknown"),
    ]
    for fields, path in cases:
        body = {"name": "valid-name", "image": "busybox:latest", **fields}
        response = await client.post("/environments", json=body, headers=user.headers)
        assert error_paths(response) == [path], (fields, response.text)
    for fields, path in (({"name": None}, "name"), ({"image": None}, "image")):
        response = await client.post(
            "/environments", json={"name": "n", "image": "i", **fields}, headers=user.headers
        )
        assert error_paths(response) == [path]
    assert error_paths(await client.post("/environments", json={}, headers=user.headers)) == ["name", "image"]
    assert data_of(await client.get("/environments", headers=user.headers)) == []
    # Limits at their bounds are accepted.
    await create_environment(
        client, user, cpu=cores, memory=65536, ports=[{"container": 65535, "host": 1024}]
    )
    await create_environment(client, user, cpu=0.01, memory=16, image="registry.example.com:5000/app:1.2-rc")


async def test_names_are_unique_per_user(client: httpx.AsyncClient, user: User, other_user: User) -> None:
    await create_environment(client, user, name="shared-name")
    again = await client.post(
        "/environments", json={"name": "shared-name", "image": "busybox"}, headers=user.headers
    )
    error_of(again, 409, "CONFLICT")
    await create_environment(client, other_user, name="shared-name")


async def test_environment_quota(client: httpx.AsyncClient, user: User) -> None:
    for i in range(20):  # SBX_MAX_ENVIRONMENTS_PER_USER defaults to 20
        await create_environment(client, user, name=f"env-{i}")
    over = await client.post(
        "/environments", json={"name": "one-more", "image": "busybox"}, headers=user.headers
    )
    error_of(over, 429, "QUOTA_EXCEEDED")
    page = await client.get("/environments", params={"limit": 15}, headers=user.headers)
    rest = await client.get(
        "/environments", params={"cursor": page.json()["nextCursor"]}, headers=user.headers
    )
    names = [e["name"] for e in data_of(page) + data_of(rest)]
    assert names == [f"env-{i}" for i in range(20)]
    # Deleting one frees a place (and its name).
    first = data_of(page)[0]
    data_of(await client.delete(f"/environments/{first['id']}", headers=user.headers))
    await create_environment(client, user, name="env-0")


async def test_delete_is_refused_while_a_sandbox_uses_the_environment(
    client: httpx.AsyncClient, user: User, pg: asyncpg.Connection
) -> None:
    env = await create_environment(client, user)
    url = f"/environments/{env['id']}"
    sandbox_id = uuid.uuid4()
    await pg.execute(
        "INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, ttl_seconds,"
        " expires_at, last_command_id, last_command_verb)"
        " VALUES ($1, $2, $3, 1, 'sb', 60, now() + interval '1 minute', $4, 'create')",
        sandbox_id,
        uuid.UUID(user.id),
        uuid.UUID(env["id"]),
        uuid.uuid4(),
    )
    error_of(await client.delete(url, headers=user.headers), 409, "CONFLICT")
    assert data_of(await client.get(url, headers=user.headers))["id"] == env["id"]

    await pg.execute(
        "INSERT INTO sandbox_runtime (sandbox_id, status, last_command_id) VALUES ($1, 'destroyed', NULL)",
        sandbox_id,
    )
    assert data_of(await client.delete(url, headers=user.headers)) == {"id": env["id"], "deleted": True}
    error_of(await client.get(url, headers=user.headers), 404, "NOT_FOUND")
    error_of(await client.delete(url, headers=user.headers), 404, "NOT_FOUND")
    # The sandbox keeps its reference; the row is only marked deleted.
    row = await pg.fetchrow("SELECT deleted_at FROM environments WHERE id = $1", uuid.UUID(env["id"]))
    assert row["deleted_at"] is not None
    assert data_of(await client.get("/environments", headers=user.headers)) == []


async def test_other_users_and_malformed_ids_get_404_on_every_route(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    theirs = await create_environment(client, other_user)
    await client.post(
        f"/environments/{theirs['id']}/secrets", json={"key": "K", "value": "v"}, headers=other_user.headers
    )
    for env_id in (theirs["id"], str(uuid.uuid4()), "nope", "123"):
        base = f"/environments/{env_id}"
        requests = [
            client.get(base, headers=user.headers),
            client.get(f"{base}/versions", headers=user.headers),
            client.put(base, json={"memory": 512}, headers=user.headers),
            client.delete(base, headers=user.headers),
            client.post(f"{base}/secrets", json={"key": "K", "value": "x"}, headers=user.headers),
            client.delete(f"{base}/secrets/K", headers=user.headers),
        ]
        for request in requests:
            error_of(await request, 404, "NOT_FOUND")
    after = data_of(await client.get(f"/environments/{theirs['id']}", headers=other_user.headers))
    assert after["version"] == 1
    assert [s["key"] for s in after["secrets"]] == ["K"]


async def test_environment_routes_need_credentials(client: httpx.AsyncClient) -> None:
    env_id = str(uuid.uuid4())
    for method, path in (
        ("GET", "/environments"),
        ("POST", "/environments"),
        ("GET", f"/environments/{env_id}"),
        ("PUT", f"/environments/{env_id}"),
        ("DELETE", f"/environments/{env_id}"),
        ("POST", f"/environments/{env_id}/secrets"),
    ):
        error_of(await client.request(method, path, json={}), 401, "UNAUTHORIZED")
