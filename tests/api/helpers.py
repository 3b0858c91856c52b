"""Small helpers shared by the API tests."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.harness import User

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


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
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


async def create_environment(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    body = {"name": f"env-{uuid.uuid4().hex[:8]}", "image": "sbx-test-busybox:latest", **fields}
    return data_of(await client.post("/environments", json=body, headers=user.headers), 201)  # type: ignore[no-any-return]
