"""Exec (exit code, stdout/stderr apart, timeout, list form, env, workdir), logs and metrics of a
running sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import User
from tests.support.sandboxes import create_sandbox, exec_in
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


async def test_exec_reports_what_ran(
    client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    sid = sandbox["id"]

    result = await exec_in(client, user, sid, "echo out; echo err >&2; exit 7")
    assert result["exitCode"] == 7
    assert result["stdout"] == "out\n"
    assert result["stderr"] == "err\n"
    assert result["timedOut"] is False
    assert result["truncated"] is False
    assert result["durationMs"] >= 0

    result = await exec_in(client, user, sid, ["echo", "a b", "$HOME"])
    assert result["stdout"] == "a b $HOME\n"  # a list runs without a shell

    result = await exec_in(client, user, sid, "pwd; echo $EXTRA", workdir="/tmp", env={"EXTRA": "x1"})
    assert result["stdout"] == "/tmp\nx1\n"

    result = await exec_in(client, user, sid, "echo started; sleep 30", timeoutSeconds=1)
    assert result["timedOut"] is True
    assert result["durationMs"] < 10_000

    await client.delete(f"/sandboxes/{sid}?wait=true", headers=user.headers)
    gone = await client.post(f"/sandboxes/{sid}/exec", json={"command": "true"}, headers=user.headers)
    assert gone.status_code == 409
    assert gone.json()["error"]["code"] == "NOT_RUNNING"


async def test_logs_and_metrics(client: httpx.AsyncClient, user: User, environment: dict[str, Any]) -> None:
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true")
    sid = sandbox["id"]

    async def logged() -> list[dict[str, Any]] | None:
        response = await client.get(f"/sandboxes/{sid}/logs", headers=user.headers)
        assert response.status_code == 200, response.text
        lines: list[dict[str, Any]] = response.json()["data"]
        return lines if {line["text"] for line in lines} >= {"booted", "ready"} else None

    lines = await wait_for(logged, timeout=30)
    by_text = {line["text"]: line for line in lines}
    assert by_text["booted"]["stream"] == "stdout"
    assert by_text["ready"]["stream"] == "stderr"
    assert set(lines[0]) == {"seq", "stream", "text", "timestamp"}
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs)

    await exec_in(client, user, sid, "for i in 1 2 3 4 5; do echo line-$i > /proc/1/fd/1; done")

    async def five_more() -> list[dict[str, Any]] | None:
        response = await client.get(f"/sandboxes/{sid}/logs?tail=3", headers=user.headers)
        data: list[dict[str, Any]] = response.json()["data"]
        return data if [line["text"] for line in data] == ["line-3", "line-4", "line-5"] else None

    tail = await wait_for(five_more, timeout=30)
    since = await client.get(f"/sandboxes/{sid}/logs?since={tail[0]['seq']}&tail=1", headers=user.headers)
    assert [line["text"] for line in since.json()["data"]] == ["line-4"]

    async def sampled() -> dict[str, Any] | None:
        response = await client.get(f"/sandboxes/{sid}/metrics", headers=user.headers)
        if response.status_code == 503:
            return None
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    metrics = await wait_for(sampled, timeout=30)
    assert set(metrics) == {"cpu", "memory", "network", "io", "pids", "timestamp"}
    assert set(metrics["cpu"]) == {"usagePercent", "cores"}
    assert set(metrics["memory"]) == {"usageBytes", "limitBytes", "usagePercent"}
    assert metrics["memory"]["limitBytes"] == 64 * 1024 * 1024
    assert metrics["pids"] >= 1
