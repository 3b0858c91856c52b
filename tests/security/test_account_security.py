"""Account security: a password change revokes every JWT issued before it, a logout revokes the
JWT presented, and API keys can expire (all 401 from then on)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from tests.support.api import User, data_of, error_of, error_paths, signup

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/auth/me", headers=bearer(token))).status_code


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def test_password_change_revokes_every_earlier_token(client: httpx.AsyncClient) -> None:
    user = await signup(client, PASSWORD)
    second = data_of(await login(client, user.email, PASSWORD))["token"]
    key = data_of(await client.post("/api-keys", json={"name": "ci"}, headers=user.headers), 201)["key"]

    changed = await client.post(
        "/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"},
        headers=user.headers,
    )
    result = data_of(changed)
    assert result["user"]["id"] == user.id
    assert "passphrase" not in changed.text

    # Both tokens issued before the change are refused, the one it returned works at once.
    assert await me_status(client, user.token) == 401
    assert await me_status(client, second) == 401
    assert await me_status(client, result["token"]) == 200
    # API keys are revoked on their own (DELETE /api-keys/:id), not by a password change.
    assert await me_status(client, key) == 200
    error_of(await login(client, user.email, PASSWORD), 401, "UNAUTHORIZED")
    assert (
        await me_status(client, data_of(await login(client, user.email, "a brand new passphrase"))["token"])
        == 200
    )


async def test_password_change_input_is_validated(client: httpx.AsyncClient, user: User) -> None:
    for body, path in (
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "newPassword"),
        ({"currentPassword": PASSWORD, "newPassword": "x" * 129}, "newPassword"),
        ({"currentPassword": PASSWORD}, "newPassword"),
        ({"newPassword": "long enough now"}, "currentPassword"),
        ({"currentPassword": "not the password", "newPassword": "long enough now"}, "currentPassword"),
    ):
        response = await client.post("/auth/password", json=body, headers=user.headers)
        assert error_paths(response) == [path], (body, response.text)
    # Nothing changed: the token and the password still work.
    assert await me_status(client, user.token) == 200
    assert (await login(client, user.email, PASSWORD)).status_code == 200
    error_of(
        await client.post("/auth/password", json={"currentPassword": PASSWORD, "newPassword": "x" * 10}),
        401,
        "UNAUTHORIZED",
    )


async def test_logout_revokes_the_token_presented(
    client: httpx.AsyncClient, user: User, pg: asyncpg.Connection
) -> None:
    other = data_of(await login(client, user.email, PASSWORD))["token"]
    # A revocation past its token's expiry is pruned by the next logout.
    stale = f"stale-{uuid.uuid4().hex}"
    await pg.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)",
        stale,
        datetime.now(UTC) - timedelta(hours=1),
    )

    assert data_of(await client.post("/auth/logout", headers=user.headers)) == {"loggedOut": True}
    error_of(await client.get("/auth/me", headers=user.headers), 401, "UNAUTHORIZED")
    error_of(await client.post("/auth/logout", headers=user.headers), 401, "UNAUTHORIZED")
    assert await me_status(client, other) == 200  # only the token presented
    assert await pg.fetchval("SELECT count(*) FROM revoked_tokens WHERE jti = $1", stale) == 0

    # An API key is not a session: it is revoked with DELETE /api-keys/:id.
    key = data_of(await client.post("/api-keys", json={"name": "k"}, headers=bearer(other)), 201)["key"]
    error_of(await client.post("/auth/logout", headers=bearer(key)), 400, "VALIDATION_ERROR")
    assert await me_status(client, key) == 200


async def test_api_keys_expire(client: httpx.AsyncClient, user: User, pg: asyncpg.Connection) -> None:
    forever = data_of(await client.post("/api-keys", json={"name": "forever"}, headers=user.headers), 201)
    assert forever["expiresAt"] is None
    before = datetime.now(UTC)
    created = data_of(
        await client.post("/api-keys", json={"name": "week", "expiresInDays": 7}, headers=user.headers), 201
    )
    expires = datetime.fromisoformat(created["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(days=7) - timedelta(minutes=1) < expires < before + timedelta(days=7, minutes=1)
    listed = {k["id"]: k for k in data_of(await client.get("/api-keys", headers=user.headers))}
    assert listed[created["id"]]["expiresAt"] == created["expiresAt"]
    assert await me_status(client, created["key"]) == 200

    await pg.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", uuid.UUID(created["id"])
    )
    error_of(await client.get("/auth/me", headers=bearer(created["key"])), 401, "UNAUTHORIZED")
    assert await me_status(client, forever["key"]) == 200


async def test_api_key_expiry_is_validated(client: httpx.AsyncClient, user: User) -> None:
    for days in (0, -1, 3651, 4000, "soon", 1.5):
        body = {"name": "k", "expiresInDays": days}
        response = await client.post("/api-keys", json=body, headers=user.headers)
        assert error_paths(response) == ["expiresInDays"], (body, response.text)
    assert data_of(await client.get("/api-keys", headers=user.headers)) == []
    for days in (1, 3650):
        body = {"name": "k", "expiresInDays": days}
        data_of(await client.post("/api-keys", json=body, headers=user.headers), 201)
