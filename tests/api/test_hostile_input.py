"""Input that passes JSON and type checks but no database would store, forged cursors, forged
forwarding headers: each is a clear 4xx, never a 500, and the OpenAPI document says so."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
from sbx_api.pagination import encode_cursor

from tests.support.api import User, create_environment, data_of, error_of, error_paths
from tests.support.platform import Platform
from tests.support.sockets import close_code_of


async def test_nul_characters_are_refused_field_by_field(client: httpx.AsyncClient, user: User) -> None:
    login = {"email": "a\u0000@example.com", "password": "password123"}
    assert error_paths(await client.post("/auth/login", json=login)) == ["email"]
    assert error_paths(await client.post("/api-keys", json={"name": "a\u0000b"}, headers=user.headers)) == [
        "name"
    ]
    body = {"name": f"nul-{uuid.uuid4().hex[:8]}", "image": "busybox", "env": {"A": "x\u0000y"}}
    assert error_paths(await client.post("/environments", json=body, headers=user.headers)) == ["env.A"]
    # Nothing was written by the refused requests.
    assert data_of(await client.get("/api-keys", headers=user.headers)) == []
    assert data_of(await client.get("/environments", headers=user.headers)) == []


async def test_a_malformed_api_key_is_refused_without_a_lookup(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    for key in ("sk_short", "sk_" + "a" * 43 + "!", "sk_" + "a" * 44):
        response = await client.get("/auth/me", headers={"Authorization": f"Bearer {key}"})
        error_of(response, 401, "UNAUTHORIZED")
    # A NUL cannot travel in a header, but it can in a WebSocket's ?token=.
    nul_key = quote("sk_\u0000" + "a" * 42)
    assert await close_code_of(f"{platform.ws_url}/ws/events?token={nul_key}") == 4001


async def test_forged_cursors_out_of_a_columns_range_are_400(client: httpx.AsyncClient, user: User) -> None:
    environment = await create_environment(client, user)
    versions = f"/environments/{environment['id']}/versions"
    # Version numbers are 32-bit, audit ids 64-bit, neither negative.
    for path, values in ((versions, (2**31, 2**40, -1)), ("/audit", (2**63, 2**70, -(2**63) - 5, -1))):
        for value in values:
            response = await client.get(path, params={"cursor": encode_cursor([value])}, headers=user.headers)
            assert error_paths(response) == ["cursor"], (path, value)
    # The largest valid values are simply past every row.
    assert (
        data_of(
            await client.get(versions, params={"cursor": encode_cursor([2**31 - 1])}, headers=user.headers)
        )
        == []
    )


async def test_malformed_json_is_reported_at_the_body(client: httpx.AsyncClient, user: User) -> None:
    headers = {**user.headers, "Content-Type": "application/json"}
    response = await client.post("/environments", content=b'{"name": ', headers=headers)
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert error["details"]["errors"] == [{"path": "body", "message": "The body is not valid JSON."}]


async def test_forwarded_for_is_not_believed_from_an_untrusted_peer(client: httpx.AsyncClient) -> None:
    """By default no proxy is trusted: a client cannot choose the address it is limited under."""
    body = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong password"}
    remaining = []
    for n in range(3):
        response = await client.post("/auth/login", json=body, headers={"X-Forwarded-For": f"10.9.9.{n}"})
        error_of(response, 401, "UNAUTHORIZED")
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    # One bucket (the real peer's) counted all three.
    assert remaining == [remaining[0], remaining[0] - 1, remaining[0] - 2]


async def test_openapi_documents_400_and_the_error_envelope_never_422(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorEnvelope"
            }
    create = schema["paths"]["/environments"]["post"]["responses"]
    assert "VALIDATION_ERROR" in create["400"]["description"]
    envelope = schema["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["properties"]) == {"success", "error"}


async def test_sandbox_metadata_and_its_filter_refuse_nul(client: httpx.AsyncClient, user: User) -> None:
    environment = await create_environment(client, user)
    body = {"environmentId": environment["id"], "metadata": {"k": "a\u0000b"}}
    assert error_paths(await client.post("/sandboxes", json=body, headers=user.headers)) == ["metadata"]
    response = await client.get("/sandboxes", params={"metadata.k": "\u0000"}, headers=user.headers)
    error_of(response, 400, "VALIDATION_ERROR")
    assert data_of(await client.get("/sandboxes", headers=user.headers)) == []


async def test_cursors_at_the_calendars_edges_are_400(client: httpx.AsyncClient, user: User) -> None:
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        cursor = encode_cursor([moment, str(uuid.uuid4())])
        for path in ("/environments", "/sandboxes", "/api-keys"):
            response = await client.get(path, params={"cursor": cursor}, headers=user.headers)
            assert error_paths(response) == ["cursor"], path
