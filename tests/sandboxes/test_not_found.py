"""Another user's sandbox, an unknown id and a malformed id all give 404 on every route, and the
foreign sandbox is left untouched."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.api import User
from tests.support.commands import CommandTap
from tests.support.sandboxes import create_sandbox, get_sandbox

ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/sandboxes/{id}", None),
    ("POST", "/sandboxes/{id}/start", None),
    ("POST", "/sandboxes/{id}/stop", None),
    ("POST", "/sandboxes/{id}/restart", None),
    ("DELETE", "/sandboxes/{id}", None),
    ("POST", "/sandboxes/{id}/replicate", {}),
    ("POST", "/sandboxes/{id}/exec", {"command": "true"}),
    ("GET", "/sandboxes/{id}/logs", None),
    ("GET", "/sandboxes/{id}/metrics", None),
]


async def test_every_route_answers_404_for_foreign_unknown_and_malformed_ids(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    environment: dict[str, Any],
    command_tap: CommandTap,
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    await command_tap.settle()
    before = len(command_tap.for_sandbox(sandbox["id"]))
    for sandbox_id in (sandbox["id"], str(uuid.uuid4()), "not-a-uuid", "12345"):
        for method, template, body in ROUTES:
            path = template.format(id=sandbox_id)
            response = await client.request(method, path, json=body, headers=other_user.headers)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "NOT_FOUND"
    await command_tap.settle()
    assert len(command_tap.for_sandbox(sandbox["id"])) == before
    assert (await get_sandbox(client, user, sandbox["id"]))["status"] == "running"
    listed = await client.get("/sandboxes", headers=other_user.headers)
    assert listed.json()["data"] == []
