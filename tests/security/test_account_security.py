"""Account security: a password change revokes every JWT issued before it, a logout revokes the
JWT presented, and API keys can expire (all 401 from then on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sandbox_platform import AsyncClient, Client, UnauthorizedError, ValidationError

from tests.support.api import User, data_of, error_of, error_paths, signup
from tests.support.platform import Platform

PASSWORD = "correct horse battery"
SBX = str(Path(sys.executable).parent / "sbx")


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


# --- clients --------------------------------------------------------------------------------------


def test_python_sdk_password_logout_and_expiring_keys(platform: Platform) -> None:
    with Client(base_url=platform.api_url) as client:
        email = f"sdk-{uuid.uuid4().hex[:12]}@example.com"
        client.auth.signup(email, PASSWORD)
        before = client.token
        key = client.api_keys.create("ci", expires_in_days=30)
        assert key.expires_at is not None
        assert [k.expires_at for k in client.api_keys.list() if k.id == key.id] == [key.expires_at]
        assert client.api_keys.create("forever").expires_at is None
        with pytest.raises(ValidationError):
            client.api_keys.create("bad", expires_in_days=0)

        assert client.auth.change_password(PASSWORD, "another passphrase").email == email
        assert client.token != before
        assert client.auth.me().email == email  # the client moved to the new token
        with Client(base_url=platform.api_url, token=before) as old, pytest.raises(UnauthorizedError):
            old.auth.me()

        client.auth.logout()
        with pytest.raises(UnauthorizedError):
            client.auth.me()


async def test_async_sdk_has_the_same_calls(platform: Platform) -> None:
    async with AsyncClient(base_url=platform.api_url) as client:
        await client.auth.signup(f"sdk-{uuid.uuid4().hex[:12]}@example.com", PASSWORD)
        assert (await client.api_keys.create("ci", expires_in_days=1)).expires_at is not None
        await client.auth.change_password(PASSWORD, "another passphrase")
        await client.auth.me()
        await client.auth.logout()
        with pytest.raises(UnauthorizedError):
            await client.auth.me()


def test_cli_passwd_logout_and_key_create(platform: Platform, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_API_KEY", "SBX_API_URL")}
    env |= {"SBX_API_URL": platform.api_url, "SBX_CONFIG_DIR": str(tmp_path), "COLUMNS": "200"}

    def sbx(*args: str) -> str:
        result = subprocess.run(
            [SBX, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        return result.stdout

    email = f"cli-{uuid.uuid4().hex[:12]}@example.com"
    sbx("signup", "--email", email, "--password", PASSWORD)
    created = json.loads(sbx("key", "create", "ci", "--expires-in-days", "7", "--json"))
    assert created["expiresAt"] is not None
    assert created["id"] in sbx("key", "ls")
    old_token = json.loads(sbx("login", "--email", email, "--password", PASSWORD, "--json"))["token"]

    sbx("passwd", "--current", PASSWORD, "--new", "another passphrase")
    assert sbx("whoami").strip() == email  # the saved token is the new one
    with Client(base_url=platform.api_url, token=old_token) as old, pytest.raises(UnauthorizedError):
        old.auth.me()

    saved = (tmp_path / "config.toml").read_text()
    sbx("logout")
    assert "token" not in (tmp_path / "config.toml").read_text()
    token = next(line.split('"')[1] for line in saved.splitlines() if line.startswith("token"))
    with Client(base_url=platform.api_url, token=token) as revoked, pytest.raises(UnauthorizedError):
        revoked.auth.me()
