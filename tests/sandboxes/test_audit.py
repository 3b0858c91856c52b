"""Every mutating sandbox call leaves an audit event (refusals included), readable at GET /audit."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import User
from tests.support.sandboxes import create_sandbox


async def test_sandbox_calls_are_audited(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    sid = sandbox["id"]
    executed = await client.post(f"/sandboxes/{sid}/exec", json={"command": "exit 4"}, headers=user.headers)
    assert executed.json()["data"]["exitCode"] == 4
    replica = await client.post(f"/sandboxes/{sid}/replicate", headers=user.headers)
    assert replica.status_code == 201
    assert (await client.delete(f"/sandboxes/{sid}?wait=true", headers=user.headers)).status_code == 202
    assert (await client.delete(f"/sandboxes/{sid}", headers=user.headers)).status_code == 409

    response = await client.get("/audit?limit=50", headers=user.headers)
    events = [e for e in response.json()["data"] if e["targetType"] == "sandbox"]
    seen = [(e["action"], e["outcome"], e["targetId"]) for e in reversed(events)]
    assert seen == [
        ("sandbox.create", "success", sid),
        ("sandbox.exec", "success", sid),
        ("sandbox.replicate", "success", replica.json()["data"]["id"]),
        ("sandbox.destroy", "success", sid),
        ("sandbox.destroy", "failed", sid),
    ]
    exec_event = next(e for e in events if e["action"] == "sandbox.exec")
    assert exec_event["details"] == {"exitCode": 4, "timedOut": False}
    assert "exit 4" not in str(events)
    assert events[0]["details"]["code"] == "INVALID_STATE"
