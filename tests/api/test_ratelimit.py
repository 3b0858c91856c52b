"""Rate limits: `/auth/*` per IP, every route per user (per IP before authentication),
with RateLimit-* headers, and 429 RATE_LIMITED with `Retry-After` when over."""

from __future__ import annotations

import itertools
import uuid

import httpx

from tests.api.conftest import AUTH_LIMIT, PER_MINUTE_LIMIT
from tests.support.api import create_environment, data_of, error_of, signup
from tests.support.sandboxes import create_sandbox


def from_ip() -> dict[str, str]:
    """Headers of a caller at an IP of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1)."""
    return {
        "X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    }


def assert_refused(response: httpx.Response, limit: int) -> None:
    error = error_of(response, 429, "RATE_LIMITED")
    retry_after = int(response.headers["Retry-After"])
    assert error["details"]["retryAfter"] == retry_after
    assert 1 <= retry_after <= 15 * 60
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(response.headers["RateLimit-Reset"]) <= 15 * 60
    assert response.headers["x-trace-id"]


async def test_auth_routes_are_limited_per_ip(limited_client: httpx.AsyncClient) -> None:
    ip = from_ip()
    body = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong password"}
    remaining = []
    for _ in range(AUTH_LIMIT):
        response = await limited_client.post("/auth/login", json=body, headers=ip)
        error_of(response, 401, "UNAUTHORIZED")
        assert response.headers["RateLimit-Limit"] == str(AUTH_LIMIT)
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == [AUTH_LIMIT - 1 - i for i in range(AUTH_LIMIT)]
    assert_refused(await limited_client.post("/auth/login", json=body, headers=ip), AUTH_LIMIT)
    # Signup and me are /auth/* too.
    assert_refused(await limited_client.post("/auth/signup", json=body, headers=ip), AUTH_LIMIT)
    assert_refused(await limited_client.get("/auth/me", headers=ip), AUTH_LIMIT)

    # Another IP is not affected.
    other = await limited_client.post("/auth/login", json=body, headers=from_ip())
    error_of(other, 401, "UNAUTHORIZED")


async def test_routes_are_limited_per_user_and_per_ip_before_authentication(
    limited_client: httpx.AsyncClient,
) -> None:
    ip = from_ip()
    users = []
    for _ in range(2):
        email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
        signup = await limited_client.post(
            "/auth/signup", json={"email": email, "password": "password123"}, headers=from_ip()
        )
        users.append({"Authorization": f"Bearer {data_of(signup, 201)['token']}", **ip})
    first, second = users

    for i in range(PER_MINUTE_LIMIT):
        response = await limited_client.get("/environments", headers=first)
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == str(PER_MINUTE_LIMIT)
        assert response.headers["RateLimit-Remaining"] == str(PER_MINUTE_LIMIT - 1 - i)
    assert_refused(await limited_client.get("/environments", headers=first), PER_MINUTE_LIMIT)
    assert_refused(
        await limited_client.post("/api-keys", json={"name": "k"}, headers=first), PER_MINUTE_LIMIT
    )
    # The second user, at the same IP, has a budget of their own.
    assert (await limited_client.get("/environments", headers=second)).status_code == 200

    # Without valid credentials the IP is counted (and the limit comes before the 401).
    anonymous = from_ip()
    for _ in range(PER_MINUTE_LIMIT):
        error_of(await limited_client.get("/environments", headers=anonymous), 401, "UNAUTHORIZED")
    assert_refused(await limited_client.get("/environments", headers=anonymous), PER_MINUTE_LIMIT)
    garbage = {**anonymous, "Authorization": "Bearer garbage"}
    assert_refused(await limited_client.get("/api-keys", headers=garbage), PER_MINUTE_LIMIT)


async def test_operations_routes_are_not_limited(limited_client: httpx.AsyncClient) -> None:
    ip = from_ip()
    for _ in range(PER_MINUTE_LIMIT + 3):
        for path in ("/health/live", "/health/ready", "/metrics"):
            response = await limited_client.get(path, headers=ip)
            assert response.status_code == 200, path
            assert "RateLimit-Limit" not in response.headers


async def test_malformed_bodies_count_against_the_limits(limited_client: httpx.AsyncClient) -> None:
    """The limits apply before a body is read: a body that is not JSON cannot skip them."""
    ip = {**from_ip(), "Content-Type": "application/json"}
    for _ in range(AUTH_LIMIT):
        response = await limited_client.post("/auth/login", content=b"{not json", headers=ip)
        error_of(response, 400, "VALIDATION_ERROR")
    assert_refused(await limited_client.post("/auth/login", content=b"{not json", headers=ip), AUTH_LIMIT)
    # Health and metrics are never limited.
    for _ in range(PER_MINUTE_LIMIT + 1):
        assert (await limited_client.get("/health/live", headers=ip)).status_code == 200


async def test_a_refused_token_spends_its_ips_budget_not_its_users(limited_client: httpx.AsyncClient) -> None:
    """A token's caller is looked up and counted in one query, which counts only a token still
    good: requests with a logged-out token are counted against their IP, as any refused ones."""
    email = f"revoked-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "password123"}
    token = data_of(await limited_client.post("/auth/signup", json=credentials, headers=from_ip()), 201)[
        "token"
    ]
    logout = await limited_client.post(
        "/auth/logout", headers={"Authorization": f"Bearer {token}", **from_ip()}
    )
    assert logout.status_code == 200  # counted against the user (the token was good then)

    revoked = {"Authorization": f"Bearer {token}", **from_ip()}
    for _ in range(PER_MINUTE_LIMIT):
        error_of(await limited_client.get("/environments", headers=revoked), 401, "UNAUTHORIZED")
    assert_refused(await limited_client.get("/environments", headers=revoked), PER_MINUTE_LIMIT)

    # The user's own budget was not touched: only the logout counted.
    fresh = data_of(await limited_client.post("/auth/login", json=credentials, headers=from_ip()))["token"]
    response = await limited_client.get(
        "/environments", headers={"Authorization": f"Bearer {fresh}", **from_ip()}
    )
    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"] == str(PER_MINUTE_LIMIT - 2)


async def test_the_sandbox_read_authenticates_counts_and_reads_in_one_statement(
    client: httpx.AsyncClient, limited_client: httpx.AsyncClient
) -> None:
    """`GET /sandboxes/:id` looks its caller up, counts the hit and reads the sandbox in one
    query (the middleware leaves the caller pending): the same answers as every other route,
    for JWTs and API keys alike, revocation included."""
    owner, stranger = await signup(client), await signup(client)
    environment = await create_environment(client, owner)
    sandbox = await create_sandbox(client, owner, environment["id"])
    key = data_of(await client.post("/api-keys", json={"name": "reader"}, headers=owner.headers), 201)["key"]
    path = f"/sandboxes/{sandbox['id']}"
    ip = from_ip()
    by_token = {**owner.headers, **ip}
    by_key = {"Authorization": f"Bearer {key}", **ip}

    # JWT and key spend the same user's budget (what was left of it after the set-up above),
    # one hit each, on the sandbox and on the list, until it is spent.
    remaining = []
    reads = itertools.cycle(
        ((path, by_token), ("/sandboxes", by_key), (path, by_key), ("/sandboxes", by_token))
    )
    for read, headers in reads:
        response = await limited_client.get(read, headers=headers)
        if response.status_code == 429:
            break
        found = data_of(response)
        assert (found["id"] if read == path else [s["id"] for s in found]) == (
            sandbox["id"] if read == path else [sandbox["id"]]
        )
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert len(remaining) >= 2
    assert remaining == list(range(remaining[0], -1, -1))
    assert_refused(response, PER_MINUTE_LIMIT)
    assert_refused(await limited_client.get(path, headers=by_key), PER_MINUTE_LIMIT)
    assert_refused(await limited_client.get(path, headers=by_token), PER_MINUTE_LIMIT)
    # Another user at the same IP has a budget of their own, and sees no sandbox of the owner's;
    # a path that is not a sandbox id is a 404 too, and a list with a bad parameter a 400, both
    # counted.
    stranger_here = {**stranger.headers, **ip}
    response = await limited_client.get(path, headers=stranger_here)
    error_of(response, 404, "NOT_FOUND")
    assert response.headers["RateLimit-Remaining"] == str(PER_MINUTE_LIMIT - 1)
    response = await limited_client.get("/sandboxes/not-an-id", headers=stranger_here)
    error_of(response, 404, "NOT_FOUND")
    assert response.headers["RateLimit-Remaining"] == str(PER_MINUTE_LIMIT - 2)
    response = await limited_client.get("/sandboxes?limit=0", headers=stranger_here)
    error_of(response, 400, "VALIDATION_ERROR")
    assert response.headers["RateLimit-Remaining"] == str(PER_MINUTE_LIMIT - 3)
    assert data_of(await limited_client.get("/sandboxes", headers=stranger_here)) == []

    # The API key's use is recorded.
    listed = data_of(await client.get("/api-keys", headers=owner.headers))
    reader = next(k for k in listed if k["name"] == "reader")
    assert reader["lastUsedAt"] is not None

    # Revoked credentials are refused (401, even for a malformed id) and spend their IP's budget.
    assert (await client.delete(f"/api-keys/{reader['id']}", headers=owner.headers)).status_code in (200, 204)
    assert (await client.post("/auth/logout", headers=owner.headers)).status_code == 200
    for headers in (by_token, by_key):
        revoked = {**headers, **from_ip()}
        response = await limited_client.get(path, headers=revoked)
        error_of(response, 401, "UNAUTHORIZED")
        assert sandbox["id"] not in response.text
        for refused in ("/sandboxes/not-an-id", "/sandboxes", "/sandboxes?limit=0&status=nonsense"):
            error_of(await limited_client.get(refused, headers=revoked), 401, "UNAUTHORIZED")
        for _ in range(PER_MINUTE_LIMIT - 4):  # the rest of the IP's budget
            error_of(await limited_client.get(path, headers=revoked), 401, "UNAUTHORIZED")
        assert_refused(await limited_client.get(path, headers=revoked), PER_MINUTE_LIMIT)
        assert_refused(await limited_client.get("/sandboxes", headers=revoked), PER_MINUTE_LIMIT)
