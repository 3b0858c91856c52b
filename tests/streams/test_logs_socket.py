"""`/ws/sandboxes/:id/logs` and the lines behind it, through the API."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.harness import Platform, User
from tests.streams.helpers import (
    LogReader,
    assert_contiguous,
    run_sandbox,
    stored_lines,
    ws_connect,
    ws_url,
)

OUT_ERR = 'i=1; while [ $i -le 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; sleep 600'


def _logs_url(platform: Platform, user: User, sandbox: dict[str, Any], **query: object) -> str:
    return ws_url(platform.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, **query)


async def test_lines_and_streams_match_what_the_container_printed(
    platform: Platform, client: httpx.AsyncClient, user: User, test_image: str, pg: asyncpg.Connection
) -> None:
    sandbox = await run_sandbox(client, user, test_image, OUT_ERR)
    async with ws_connect(_logs_url(platform, user, sandbox, since=0)) as socket:
        reader = LogReader(socket)
        await reader.read_until(lambda r: len(r.lines) >= 600)
    assert_contiguous(reader.seqs)
    assert {frozenset(frame) for frame in reader.lines} == {
        frozenset({"type", "seq", "stream", "text", "timestamp"})
    }
    stdout = [f["text"] for f in reader.lines if f["stream"] == "stdout"]
    stderr = [f["text"] for f in reader.lines if f["stream"] == "stderr"]
    assert stdout == [f"out {i}" for i in range(1, 301)]
    assert stderr == [f"err {i}" for i in range(1, 301)]
    assert all(f["timestamp"].endswith("Z") for f in reader.lines)

    # The same lines over HTTP, and in the database exactly once each.
    response = await client.get(f"/sandboxes/{sandbox['id']}/logs?tail=1000", headers=user.headers)
    assert [(x["seq"], x["stream"], x["text"]) for x in response.json()["data"]] == [
        (f["seq"], f["stream"], f["text"]) for f in reader.lines
    ]
    assert_contiguous([r["seq"] for r in await stored_lines(pg, sandbox["id"])])
