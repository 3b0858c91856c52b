"""Secrets: encrypted at rest (AES-256-GCM bound to environment and key), never shown or logged."""

from __future__ import annotations

import secrets
import uuid

import asyncpg
import httpx
import pytest
from sbx_common.crypto import DecryptionFailed, SealedSecret, SecretBox, secret_binding

from tests.support.api import RFC3339_UTC, User, create_environment, data_of, error_of, error_paths
from tests.support.platform import Platform


def box_of(platform: Platform) -> SecretBox:
    return SecretBox.from_settings(platform.base_env["SBX_SECRETS_MASTER_KEY"])


async def sealed(pg: asyncpg.Connection, env_id: str, key: str) -> SealedSecret:
    row = await pg.fetchrow(
        "SELECT key_id, nonce, ciphertext FROM environment_secrets WHERE environment_id = $1 AND key = $2",
        uuid.UUID(env_id),
        key,
    )
    assert row is not None
    return SealedSecret(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))


async def test_set_replace_list_and_delete_secrets(client: httpx.AsyncClient, user: User) -> None:
    env = await create_environment(client, user)
    url = f"/environments/{env['id']}/secrets"
    first = data_of(
        await client.post(url, json={"key": "API_KEY", "value": "one"}, headers=user.headers), 201
    )
    assert set(first) == {"key", "updatedAt"}
    assert first["key"] == "API_KEY"
    assert RFC3339_UTC.match(first["updatedAt"])
    data_of(await client.post(url, json={"key": "_OTHER", "value": ""}, headers=user.headers), 201)
    replaced = data_of(
        await client.post(url, json={"key": "API_KEY", "value": "two"}, headers=user.headers), 201
    )
    assert replaced["updatedAt"] >= first["updatedAt"]

    current = data_of(await client.get(f"/environments/{env['id']}", headers=user.headers))
    assert current["secrets"] == [
        replaced,
        {"key": "_OTHER", "updatedAt": current["secrets"][1]["updatedAt"]},
    ]
    assert current["version"] == 1  # secrets are not versioned
    listed = data_of(await client.get("/environments", headers=user.headers))
    assert listed[0]["secrets"] == current["secrets"]

    assert data_of(await client.delete(f"{url}/API_KEY", headers=user.headers)) == {
        "key": "API_KEY",
        "deleted": True,
    }
    error_of(await client.delete(f"{url}/API_KEY", headers=user.headers), 404, "NOT_FOUND")
    error_of(await client.delete(f"{url}/never_set", headers=user.headers), 404, "NOT_FOUND")
    keys = [
        s["key"]
        for s in data_of(await client.get(f"/environments/{env['id']}", headers=user.headers))["secrets"]
    ]
    assert keys == ["_OTHER"]


async def test_secret_input_is_validated_without_echoing_the_value(
    client: httpx.AsyncClient, user: User
) -> None:
    env = await create_environment(client, user)
    url = f"/environments/{env['id']}/secrets"
    marker = "Zq" + secrets.token_hex(8)
    too_long = marker * (64 * 1024 // len(marker) + 1)
    cases = [
        ({"key": "lower", "value": marker}, "key"),
        ({"key": "1ABC", "value": marker}, "key"),
        ({"key": "", "value": marker}, "key"),
        ({"key": "A-B", "value": marker}, "key"),
        ({"key": "OK", "value": too_long}, "value"),
        ({"key": "OK", "value": "é" * (32 * 1024 + 1)}, "value"),  # 64 KiB + 2 bytes in UTF-8
        ({"key": "OK", "value": marker + "\u0000"}, "value"),
        ({"key": "OK", "value": 12345}, "value"),
        ({"key": "OK"}, "value"),
        ({"key": "OK", "value": marker, "extra": marker}, "extra"),
    ]
    for body, path in cases:
        response = await client.post(url, json=body, headers=user.headers)
        assert error_paths(response) == [path], (body.get("key"), response.text[:300])
        assert marker not in response.text
        assert "12345" not in response.text
    exactly = "x" * (64 * 1024)
    data_of(await client.post(url, json={"key": "OK", "value": exactly}, headers=user.headers), 201)


async def test_secrets_are_encrypted_at_rest_and_bound_to_their_row(
    client: httpx.AsyncClient, user: User, platform: Platform, pg: asyncpg.Connection
) -> None:
    env = await create_environment(client, user)
    other_env = await create_environment(client, user)
    value = "plain-" + secrets.token_hex(12)
    for env_id in (env["id"], other_env["id"]):
        for key in ("TOKEN", "SPARE"):
            body = {"key": key, "value": value}
            data_of(
                await client.post(f"/environments/{env_id}/secrets", json=body, headers=user.headers), 201
            )

    # No plaintext anywhere in the table.
    rows = await pg.fetch("SELECT * FROM environment_secrets WHERE environment_id = $1", uuid.UUID(env["id"]))
    dump = b"".join(
        bytes(v) if isinstance(v, bytes | bytearray | memoryview) else str(v).encode()
        for row in rows
        for v in row.values()
    )
    assert value.encode() not in dump
    assert value[6:].encode() not in dump

    box = box_of(platform)
    token = await sealed(pg, env["id"], "TOKEN")
    assert token.key_id == box.current_key_id
    assert len(token.nonce) == 12
    assert box.open(token, secret_binding(env["id"], "TOKEN")) == value
    # Fresh nonce per encryption: the same value never gives the same ciphertext.
    spare = await sealed(pg, env["id"], "SPARE")
    assert spare.nonce != token.nonce
    assert spare.ciphertext != token.ciphertext

    # Tampering with the ciphertext, or reading it under another binding, fails.
    flipped = bytes([token.ciphertext[0] ^ 1]) + token.ciphertext[1:]
    with pytest.raises(DecryptionFailed):
        box.open(SealedSecret(token.key_id, token.nonce, flipped), secret_binding(env["id"], "TOKEN"))
    with pytest.raises(DecryptionFailed):
        box.open(
            SealedSecret("unknown-key-id", token.nonce, token.ciphertext), secret_binding(env["id"], "TOKEN")
        )

    # Copy the ciphertext row onto another key of the same environment, and onto another environment.
    await pg.execute(
        "UPDATE environment_secrets AS t SET key_id = s.key_id, nonce = s.nonce, ciphertext = s.ciphertext"
        " FROM environment_secrets AS s WHERE s.environment_id = $1 AND s.key = 'TOKEN'"
        " AND ((t.environment_id = $1 AND t.key = 'SPARE') OR (t.environment_id = $2 AND t.key = 'TOKEN'))",
        uuid.UUID(env["id"]),
        uuid.UUID(other_env["id"]),
    )
    moved_key = await sealed(pg, env["id"], "SPARE")
    moved_env = await sealed(pg, other_env["id"], "TOKEN")
    assert moved_key.ciphertext == token.ciphertext == moved_env.ciphertext
    with pytest.raises(DecryptionFailed):
        box.open(moved_key, secret_binding(env["id"], "SPARE"))
    with pytest.raises(DecryptionFailed):
        box.open(moved_env, secret_binding(other_env["id"], "TOKEN"))
    # A different master key cannot read it either.
    with pytest.raises(DecryptionFailed):
        SecretBox(secrets.token_bytes(32)).open(token, secret_binding(env["id"], "TOKEN"))


async def test_secret_values_appear_in_no_response_and_no_log(
    client: httpx.AsyncClient, user: User, platform: Platform
) -> None:
    env = await create_environment(client, user)
    value = "leak-canary-" + secrets.token_hex(16)
    url = f"/environments/{env['id']}/secrets"
    responses = [
        await client.post(url, json={"key": "CANARY", "value": value}, headers=user.headers),
        await client.post(url, json={"key": "bad key", "value": value}, headers=user.headers),
        await client.post(url, json={"key": "CANARY", "value": value, "x": value}, headers=user.headers),
        await client.post(
            url,
            content=b'{"key": "CANARY", "value": "' + value.encode() + b'"',
            headers={**user.headers, "Content-Type": "application/json"},
        ),
        await client.get(f"/environments/{env['id']}", headers=user.headers),
        await client.get("/environments", headers=user.headers),
        await client.get("/audit", headers=user.headers),
    ]
    for response in responses:
        assert value not in response.text
    assert value not in platform.logs()


async def test_deleting_an_environment_drops_its_secrets(
    client: httpx.AsyncClient, user: User, pg: asyncpg.Connection
) -> None:
    env = await create_environment(client, user)
    url = f"/environments/{env['id']}"
    data_of(await client.post(f"{url}/secrets", json={"key": "K", "value": "v"}, headers=user.headers), 201)
    data_of(await client.delete(url, headers=user.headers))
    count = await pg.fetchval(
        "SELECT count(*) FROM environment_secrets WHERE environment_id = $1", uuid.UUID(env["id"])
    )
    assert count == 0
