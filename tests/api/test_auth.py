"""Signup, login, `me`, and every way a credential can be wrong (all 401)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt

from tests.support.api import RFC3339_UTC, User, data_of, error_of, error_paths
from tests.support.platform import Platform


def new_email() -> str:
    return f"Person-{uuid.uuid4().hex[:10]}@Example.COM"


async def test_signup_returns_user_and_token_and_login_works(client: httpx.AsyncClient) -> None:
    email = new_email()
    data = data_of(await client.post("/auth/signup", json={"email": email, "password": "password123"}), 201)
    assert set(data) == {"user", "token"}
    assert set(data["user"]) == {"id", "email", "createdAt"}
    assert data["user"]["email"] == email.lower()
    uuid.UUID(data["user"]["id"])
    assert RFC3339_UTC.match(data["user"]["createdAt"])

    login = data_of(
        await client.post("/auth/login", json={"email": email.upper(), "password": "password123"})
    )
    assert login["user"] == data["user"]
    me = data_of(await client.get("/auth/me", headers={"Authorization": f"Bearer {login['token']}"}))
    assert me == data["user"]


async def test_signup_with_a_registered_email_in_any_case_is_a_conflict(client: httpx.AsyncClient) -> None:
    email = new_email()
    assert (
        await client.post("/auth/signup", json={"email": email, "password": "password123"})
    ).status_code == 201
    again = await client.post("/auth/signup", json={"email": email.swapcase(), "password": "another-pass"})
    error_of(again, 409, "CONFLICT")


async def test_signup_validates_email_and_password(client: httpx.AsyncClient) -> None:
    cases = [
        ({"email": "not-an-email", "password": "password123"}, ["email"]),
        ({"email": new_email(), "password": "short"}, ["password"]),
        ({"email": new_email(), "password": "x" * 129}, ["password"]),
        ({"email": new_email()}, ["password"]),
        ({"email": 42, "password": "password123"}, ["email"]),
        ({"email": new_email(), "password": "password123", "admin": True}, ["admin"]),
        ([], ["body"]),
    ]
    for body, paths in cases:
        response = await client.post("/auth/signup", json=body)
        assert error_paths(response) == paths, (body, response.text)
        assert "password123" not in response.text


async def test_long_passwords_up_to_128_characters_work(client: httpx.AsyncClient) -> None:
    email, password = new_email(), "p" * 100 + "é" * 28  # over bcrypt's 72-byte limit
    assert (await client.post("/auth/signup", json={"email": email, "password": password})).status_code == 201
    data_of(await client.post("/auth/login", json={"email": email, "password": password}))
    wrong = await client.post("/auth/login", json={"email": email, "password": password[:-1] + "x"})
    error_of(wrong, 401, "UNAUTHORIZED")


async def test_login_failure_says_the_same_whether_or_not_the_email_exists(
    client: httpx.AsyncClient, user: User
) -> None:
    wrong_password = await client.post(
        "/auth/login", json={"email": user.email, "password": "wrong password"}
    )
    unknown_email = await client.post(
        "/auth/login", json={"email": new_email(), "password": "wrong password"}
    )
    malformed = await client.post("/auth/login", json={"email": "nobody", "password": ""})
    messages = {
        error_of(r, 401, "UNAUTHORIZED")["message"] for r in (wrong_password, unknown_email, malformed)
    }
    assert len(messages) == 1


async def test_malformed_json_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login", content=b'{"email": "a@b.c", "password":', headers={"Content-Type": "application/json"}
    )
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["message"] == "The body is not valid JSON."


def _token(secret: str, user_id: str, **claims: object) -> str:
    now = datetime.now(UTC)
    payload = {"sub": user_id, "iat": now, "exp": now + timedelta(hours=1), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


async def test_bad_credentials_are_401(client: httpx.AsyncClient, platform: Platform, user: User) -> None:
    secret = platform.base_env["SBX_JWT_SECRET"]
    _header, payload, _signature = user.token.split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    unsigned = jwt.encode({"sub": user.id, "exp": 4102444800}, key=None, algorithm="none")  # type: ignore[arg-type]
    credentials = {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer"},
        "other scheme": {"Authorization": f"Basic {user.token}"},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "garbage api key": {"Authorization": "Bearer sk_" + "A" * 43},
        "expired": {
            "Authorization": f"Bearer {_token(secret, user.id, exp=datetime.now(UTC) - timedelta(seconds=5))}"
        },
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "alg none, real payload": {"Authorization": f"Bearer {none_header}.{payload}."},
        "wrong secret": {"Authorization": f"Bearer {_token('x' * 48, user.id)}"},
        "unknown user": {"Authorization": f"Bearer {_token(secret, str(uuid.uuid4()))}"},
        "no exp": {"Authorization": f"Bearer {jwt.encode({'sub': user.id}, secret, algorithm='HS256')}"},
    }
    for name, headers in credentials.items():
        response = await client.get("/auth/me", headers=headers)
        assert response.status_code == 401, (name, response.text)
        error_of(response, 401, "UNAUTHORIZED")
    # A token we did sign, with a valid expiry, does work.
    assert (
        await client.get("/auth/me", headers={"Authorization": f"Bearer {_token(secret, user.id)}"})
    ).status_code == 200
