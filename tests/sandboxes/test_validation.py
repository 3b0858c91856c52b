"""Bad input to the sandbox routes: 400 `VALIDATION_ERROR` with the failing field, never 422/500,
and nothing is created."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import User, error_paths

BAD_CREATE_BODIES = [
    ({}, "environmentId"),
    ({"environmentId": "not-a-uuid"}, "environmentId"),
    ({"ttlSeconds": 9}, "ttlSeconds"),
    ({"ttlSeconds": 604_801}, "ttlSeconds"),
    ({"ttlSeconds": "60"}, "ttlSeconds"),
    ({"environmentVersion": 0}, "environmentVersion"),
    ({"env": {"1BAD": "x"}}, "env"),
    ({"env": {"OK": 1}}, "env.OK"),
    ({"env": ["A=1"]}, "env"),
    ({"metadata": {f"k{i}": "v" for i in range(33)}}, "metadata"),
    ({"metadata": {"team": "x" * 257}}, "metadata.team"),
    ({"metadata": {"": "empty"}}, "metadata"),
    ({"name": ""}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"unknownField": True}, "unknownField"),
]


@pytest.mark.parametrize(("patch", "path"), BAD_CREATE_BODIES)
async def test_create_rejects_bad_bodies(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], patch: dict[str, Any], path: str
) -> None:
    body = {"environmentId": environment["id"], **patch} if patch else {}
    response = await client.post("/sandboxes", json=body, headers=user.headers)
    assert response.status_code == 400, response.text
    assert any(p.startswith(path) for p in error_paths(response)), (path, response.text)
    listed = await client.get("/sandboxes", headers=user.headers)
    assert listed.json()["data"] == []


async def test_create_rejects_malformed_json(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/sandboxes", content=b"{not json", headers={**user.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_create_with_unknown_or_foreign_environment_is_404(
    client: httpx.AsyncClient, user: User, other_user: User, environment: dict[str, Any]
) -> None:
    for env_id, who in ((str(uuid.uuid4()), user), (environment["id"], other_user)):
        response = await client.post("/sandboxes", json={"environmentId": env_id}, headers=who.headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
    response = await client.post(
        "/sandboxes",
        json={"environmentId": environment["id"], "environmentVersion": 99},
        headers=user.headers,
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "query",
    ["wait=maybe", "wait=true&timeout=301", "wait=true&timeout=-1", "wait=true&timeout=soon"],
)
async def test_lifecycle_query_is_validated(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any], query: str
) -> None:
    response = await client.post(
        f"/sandboxes?{query}", json={"environmentId": environment["id"]}, headers=user.headers
    )
    assert response.status_code == 400, response.text
    fake = uuid.uuid4()
    for method, path in (("POST", f"/sandboxes/{fake}/stop"), ("DELETE", f"/sandboxes/{fake}")):
        response = await client.request(method, f"{path}?{query}", headers=user.headers)
        assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=x",
        "status=bogus",
        "status=running,bogus",
        "environmentId=nope",
        "cursor=%%%",
    ],
)
async def test_list_query_is_validated(client: httpx.AsyncClient, user: User, query: str) -> None:
    response = await client.get(f"/sandboxes?{query}", headers=user.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "command"),
        ({"command": ""}, "command"),
        ({"command": []}, "command"),
        ({"command": ["", "x"]}, "command"),
        ({"command": 5}, "command"),
        ({"command": "true", "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"command": "true", "timeoutSeconds": 301}, "timeoutSeconds"),
        ({"command": "true", "workdir": "relative"}, "workdir"),
        ({"command": "true", "env": {"A B": "x"}}, "env"),
    ],
)
async def test_exec_body_is_validated(
    client: httpx.AsyncClient, user: User, body: dict[str, Any], path: str
) -> None:
    # The body is checked before the sandbox is looked up.
    response = await client.post(f"/sandboxes/{uuid.uuid4()}/exec", json=body, headers=user.headers)
    assert response.status_code == 400, response.text
    assert any(p.startswith(path) for p in error_paths(response)), response.text


@pytest.mark.parametrize("query", ["tail=0", "tail=10001", "since=-1", "since=x"])
async def test_logs_query_is_validated(client: httpx.AsyncClient, user: User, query: str) -> None:
    response = await client.get(f"/sandboxes/{uuid.uuid4()}/logs?{query}", headers=user.headers)
    assert response.status_code == 400, response.text


async def test_routes_need_credentials(client: httpx.AsyncClient) -> None:
    fake = uuid.uuid4()
    for method, path in (
        ("GET", "/sandboxes"),
        ("POST", "/sandboxes"),
        ("GET", f"/sandboxes/{fake}"),
        ("POST", f"/sandboxes/{fake}/stop"),
        ("DELETE", f"/sandboxes/{fake}"),
        ("POST", f"/sandboxes/{fake}/exec"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
