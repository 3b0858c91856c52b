"""Operations: health, readiness, liveness, Prometheus metrics, and the envelope at the edges
(unknown routes, oversized bodies, trace ids)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
from sbx_common import db
from sbx_devstack.servers import EmbeddedNats

from tests.support.api import RFC3339_UTC, User, create_environment, data_of, error_of, signup
from tests.support.platform import Platform, start_api
from tests.support.waiting import wait_for


def gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def test_health_live_and_ready(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    body = health.json()
    assert set(body) == {"status", "db", "nats", "docker", "timestamp"}
    assert (body["db"], body["nats"]) == ("ok", "ok")
    assert body["docker"] in ("ok", "down")
    assert RFC3339_UTC.match(body["timestamp"])
    healthy = body["docker"] == "ok"
    assert (health.status_code, body["status"]) == ((200, "ok") if healthy else (503, "degraded"))
    live = await client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"alive": True})
    ready = await client.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_health_reports_what_is_down(lone_api: tuple[Platform, EmbeddedNats]) -> None:
    api, nats = lone_api
    async with api.client(timeout=30) as http:
        # No orchestrator answers on this NATS: Docker's status is unknown, so "down".
        health = await http.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert (body["status"], body["db"], body["nats"], body["docker"]) == ("degraded", "ok", "ok", "down")
        assert (await http.get("/health/ready")).status_code == 200

        nats.stop()

        async def nats_down() -> httpx.Response | None:
            response = await http.get("/health")
            return response if response.json()["nats"] == "down" else None

        health = await wait_for(nats_down, timeout=15)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert (await http.get("/health/live")).status_code == 200


async def test_metrics_expose_http_and_database_counts(client: httpx.AsyncClient, user: User) -> None:
    before = (await client.get("/metrics")).text
    for name in ("users_total", "environments_total", "sandboxes_total", "sandboxes_running"):
        gauge(before, name)
    await signup(client)
    env = await create_environment(client, user)
    data_of(await client.get(f"/environments/{env['id']}", headers=user.headers))
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")

    async def refreshed() -> str | None:
        text = (await client.get("/metrics")).text
        grown = gauge(text, "users_total") >= gauge(before, "users_total") + 1
        return (
            text
            if grown and gauge(text, "environments_total") >= gauge(before, "environments_total") + 1
            else None
        )

    # The business gauges are refreshed in the background (SBX_METRICS_REFRESH_SECONDS).
    after = await wait_for(refreshed, timeout=15, what="gauges refreshed")
    assert 'path="/environments/{environment_id}"' in after
    assert re.search(
        r'http_requests_total\{method="GET",path="/environments/\{environment_id\}",status="200"\}', after
    )
    assert "http_request_duration_seconds_bucket{" in after
    assert env["id"] not in after  # labels are route templates, never raw paths


async def test_gauges_are_counted_in_the_database_in_the_background(
    client: httpx.AsyncClient, user: User, pg: asyncpg.Connection
) -> None:
    env = await create_environment(client, user)

    async def matching() -> str | None:
        text = (await client.get("/metrics")).text
        environments = await pg.fetchval("SELECT count(*) FROM environments WHERE deleted_at IS NULL")
        users = await pg.fetchval("SELECT count(*) FROM users")
        same = gauge(text, "environments_total") == environments and gauge(text, "users_total") == users
        return text if same else None

    text = await wait_for(matching, timeout=15, what="gauges equal to the database's counts")
    # A change made behind the API's back shows after the next refresh: no process-local counter.
    await pg.execute("UPDATE environments SET deleted_at = now() WHERE id = $1", uuid.UUID(env["id"]))
    await wait_for(matching, timeout=15, what="gauges following a change made in the database")
    assert gauge(text, "environments_total") >= 1


async def test_unknown_routes_and_methods(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get("/no/such/route", headers={"x-trace-id": "my-trace-123"})
    error_of(response, 404, "NOT_FOUND")
    assert response.headers["x-trace-id"] == "my-trace-123"
    error_of(await client.get("/api/environments", headers=user.headers), 404, "NOT_FOUND")
    not_allowed = await client.patch("/environments", headers=user.headers)
    error_of(not_allowed, 405, "METHOD_NOT_ALLOWED")
    assert not_allowed.headers["allow"] == "GET, POST"
    generated = (await client.get("/health/live")).headers["x-trace-id"]
    assert re.match(r"^[A-Za-z0-9._-]{8,}$", generated)
    bad_trace = await client.get("/health/live", headers={"x-trace-id": "bad trace id!"})
    assert bad_trace.headers["x-trace-id"] != "bad trace id!"


async def test_bodies_over_one_mebibyte_are_refused(client: httpx.AsyncClient, user: User) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    headers = {**user.headers, "Content-Type": "application/json"}
    error_of(await client.post("/api-keys", content=big, headers=headers), 413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    error_of(await client.post("/api-keys", content=chunks(), headers=headers), 413, "PAYLOAD_TOO_LARGE")
    assert data_of(await client.get("/api-keys", headers=user.headers)) == []


async def test_bodies_that_are_not_json_objects(client: httpx.AsyncClient, user: User) -> None:
    headers = {**user.headers, "Content-Type": "application/json"}
    for content in (b"not json", b"[1, 2]", b'"name"', b"{", b"\xff\xfe"):
        response = await client.post("/api-keys", content=content, headers=headers)
        error = error_of(response, 400, "VALIDATION_ERROR")
        assert error["details"]["errors"], content
    # JSON is expected to say so (Content-Type: application/json).
    response = await client.post("/api-keys", content=b'{"name": "k"}', headers=user.headers)
    assert error_of(response, 400, "VALIDATION_ERROR")["details"]["errors"][0]["path"] == "body"


async def test_openapi_schema_documents_the_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/auth/signup", "/api-keys/{key_id}", "/environments/{environment_id}/secrets", "/audit"):
        assert path in schema["paths"], path


async def test_a_database_outage_is_503_and_changes_nothing(
    platform: Platform, migrated: str, pg: asyncpg.Connection, tmp_path: Path
) -> None:
    name = f"outage_{uuid.uuid4().hex[:8]}"
    await pg.execute(f'CREATE DATABASE "{name}"')
    dsn = migrated.rsplit("/", 1)[0] + f"/{name}"
    await db.migrate(dsn)
    api = start_api(platform.base_env, tmp_path, SBX_DATABASE_URL=dsn)
    try:
        async with api.client(timeout=30) as http:
            user = await signup(http)
            # The database goes away: no new connections, and the open ones are cut.
            await pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await pg.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )

            body = {"name": "during-outage", "image": "busybox"}
            for _ in range(3):
                response = await http.post("/environments", json=body, headers=user.headers)
                error_of(response, 503, "UNAVAILABLE")
            # Reads that look their caller up in their own statement, also when the request
            # would have been a 404 or a 400: the caller cannot be looked up, so 503.
            for path in (
                f"/sandboxes/{uuid.uuid4()}",
                "/sandboxes/not-an-id",
                "/sandboxes",
                "/sandboxes?limit=0",
            ):
                error_of(await http.get(path, headers=user.headers), 503, "UNAVAILABLE")
            health = await http.get("/health")
            assert (health.status_code, health.json()["db"]) == (503, "down")
            assert (await http.get("/health/ready")).status_code == 503

            await pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await wait_for(ready, timeout=15)
            assert data_of(await http.get("/environments", headers=user.headers)) == []
    finally:
        api.stop_all()
        await pg.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
