"""The audit trail: every mutating action (and refused attempt) of a user, newest first."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.support.api import RFC3339_UTC, User, create_environment, data_of, error_of, error_paths

EVENT_KEYS = {"id", "action", "targetType", "targetId", "outcome", "traceId", "details", "occurredAt"}


async def events_of(client: httpx.AsyncClient, user: User, **params: object) -> list[dict[str, object]]:
    return data_of(await client.get("/audit", params=params, headers=user.headers))  # type: ignore[no-any-return]


async def test_actions_are_recorded_newest_first_with_trace_ids(
    client: httpx.AsyncClient, user: User
) -> None:
    await client.post("/auth/login", json={"email": user.email, "password": "not the password"})
    key = data_of(await client.post("/api-keys", json={"name": "ci"}, headers=user.headers), 201)
    data_of(await client.delete(f"/api-keys/{key['id']}", headers=user.headers))
    env = await create_environment(client, user, name="audited")
    url = f"/environments/{env['id']}"
    data_of(
        await client.put(url, json={"memory": 512}, headers={**user.headers, "x-trace-id": "trace-put-1"})
    )
    secret = {"key": "TOKEN", "value": "audit-secret-value"}
    data_of(await client.post(f"{url}/secrets", json=secret, headers=user.headers), 201)
    data_of(await client.delete(f"{url}/secrets/TOKEN", headers=user.headers))
    error_of(await client.delete(f"{url}/secrets/TOKEN", headers=user.headers), 404, "NOT_FOUND")
    data_of(await client.delete(url, headers=user.headers))

    response = await client.get("/audit", headers=user.headers)
    assert "audit-secret-value" not in response.text
    events = data_of(response)
    assert all(set(e) == EVENT_KEYS for e in events)
    assert all(RFC3339_UTC.match(str(e["occurredAt"])) and e["traceId"] for e in events)
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("environment.delete", "success"),
        ("environment.secret.delete", "denied"),
        ("environment.secret.delete", "success"),
        ("environment.secret.set", "success"),
        ("environment.update", "success"),
        ("environment.create", "success"),
        ("api_key.delete", "success"),
        ("api_key.create", "success"),
        ("auth.login", "denied"),
        ("auth.signup", "success"),
    ]
    by_action = {e["action"]: e for e in reversed(events)}
    assert by_action["environment.update"]["traceId"] == "trace-put-1"
    assert by_action["environment.update"]["details"] == {"version": 2, "fields": ["memory"]}
    assert by_action["environment.secret.set"]["details"] == {"key": "TOKEN"}
    assert by_action["environment.create"]["targetType"] == "environment"
    assert by_action["environment.create"]["targetId"] == env["id"]
    assert by_action["api_key.create"]["targetId"] == key["id"]
    assert by_action["auth.signup"]["targetId"] == user.id

    # Pages of 4, newest first, and nothing left after the last.
    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/audit", params=params, headers=user.headers)
        seen += data_of(page)
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert seen == events


async def test_refused_attempts_are_recorded(
    client: httpx.AsyncClient, user: User, other_user: User, pg: asyncpg.Connection
) -> None:
    await create_environment(client, user, name="taken")
    error_of(
        await client.post("/environments", json={"name": "taken", "image": "busybox"}, headers=user.headers),
        409,
        "CONFLICT",
    )
    theirs = await create_environment(client, other_user)
    error_of(await client.delete(f"/environments/{theirs['id']}", headers=user.headers), 404, "NOT_FOUND")
    events = await events_of(client, user)
    assert [(e["action"], e["outcome"], e["details"]) for e in events[:2]] == [
        ("environment.delete", "denied", {"code": "NOT_FOUND"}),
        ("environment.create", "failed", {"code": "CONFLICT"}),
    ]
    # Each user sees only their own trail.
    assert all(e["targetId"] != theirs["id"] or e["outcome"] == "denied" for e in events)
    assert [e["action"] for e in await events_of(client, other_user)] == ["environment.create", "auth.signup"]
    # A login attempt for an unknown email is recorded without a user.
    trace = f"ghost-{uuid.uuid4().hex}"
    await client.post(
        "/auth/login", json={"email": "ghost@example.com", "password": "x"}, headers={"x-trace-id": trace}
    )
    row = await pg.fetchrow("SELECT user_id, action, outcome FROM audit_events WHERE trace_id = $1", trace)
    assert dict(row) == {"user_id": None, "action": "auth.login", "outcome": "denied"}


async def test_audit_needs_credentials_and_valid_paging(client: httpx.AsyncClient, user: User) -> None:
    error_of(await client.get("/audit"), 401, "UNAUTHORIZED")
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "bm90LWpzb24"}):
        assert error_paths(await client.get("/audit", params=params, headers=user.headers)) == [
            next(iter(params))
        ]
    assert len(await events_of(client, user, limit=500)) == 1
