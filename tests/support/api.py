"""The HTTP API as a client sees it: users and their tokens, the response envelope, and the
environments a test needs before it can make a sandbox."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.docker import TEST_IMAGE

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass
class User:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(client: httpx.AsyncClient, password: str = "correct horse battery") -> User:
    """A new user with an address of its own, signed up through the API."""
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post("/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return User(id=data["user"]["id"], email=email, token=data["token"])


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the contract's error envelope and return its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def error_paths(response: httpx.Response) -> list[str]:
    """The field paths of a 400 VALIDATION_ERROR."""
    error = error_of(response, 400, "VALIDATION_ERROR")
    return [e["path"] for e in error["details"]["errors"]]


def data_of(response: httpx.Response, status: int = 200) -> Any:
    """Assert a successful envelope with `status` and return its `data`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


async def create_environment(
    client: httpx.AsyncClient, user: User, image: str = TEST_IMAGE, **fields: Any
) -> dict[str, Any]:
    """An environment of `user` with a name of its own (unless `name` is given)."""
    body = {"name": f"env-{uuid.uuid4().hex[:8]}", "image": image, **fields}
    response = await client.post("/environments", json=body, headers=user.headers)
    created: dict[str, Any] = data_of(response, 201)
    return created


async def set_secret(
    client: httpx.AsyncClient, user: User, environment_id: str, key: str, value: str
) -> None:
    response = await client.post(
        f"/environments/{environment_id}/secrets", json={"key": key, "value": value}, headers=user.headers
    )
    assert response.status_code == 201, response.text
