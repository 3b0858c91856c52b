"""One trace spans the API request, the orchestrator's handling of its command (with its Docker
calls) and the log shipper taking up the sandbox; an exec request is one trace too.

The services are separate processes, so each writes its spans with the `sbx_jsonfile` exporter
(`OTEL_TRACES_EXPORTER=sbx_jsonfile`, one `SBX_TRACE_FILE` per service), and the test reads them
back. It runs its own NATS, PostgreSQL and services: the session's orchestrator, which traces
nothing, would otherwise compete for the commands.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import create_environment, signup
from tests.support.platform import Platform, dedicated_platform
from tests.support.waiting import wait_for

TRACED_SERVICES = ("orchestrator", "log-shipper", "api")


@pytest.fixture(scope="module")
def traced_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traced")


@pytest.fixture(scope="module")
async def traced_platform(traced_dir: Path, test_image: str) -> AsyncIterator[Platform]:
    """Its own NATS, PostgreSQL and traced services, each writing its spans to a file in
    `traced_dir`."""
    trace_files = {n: {"SBX_TRACE_FILE": str(traced_dir / f"{n}.spans.jsonl")} for n in TRACED_SERVICES}
    async with dedicated_platform(
        traced_dir,
        services=TRACED_SERVICES,
        env={"OTEL_TRACES_EXPORTER": "sbx_jsonfile"},
        service_env=trace_files,
    ) as plat:
        yield plat.platform


def read_spans(traced_dir: Path) -> list[dict[str, Any]]:
    spans = []
    for path in traced_dir.glob("*.spans.jsonl"):
        spans += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return spans


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    chain = []
    while span.get("parentSpanId") in by_id:
        span = by_id[span["parentSpanId"]]
        chain.append(span)
    return chain


async def test_one_trace_from_the_api_request_through_the_orchestrator_and_docker(
    traced_platform: Platform, traced_dir: Path, test_image: str
) -> None:
    async with traced_platform.client() as http:
        user = await signup(http)
        environment = await create_environment(http, user, test_image, name="traced", cpu=0.5, memory=64)
        created = await http.post(
            "/sandboxes?wait=true",
            json={"environmentId": environment["id"], "name": "traced"},
            headers=user.headers,
        )
        assert created.status_code in (200, 201), created.text
        sandbox = created.json()["data"]
        assert sandbox["status"] == "running", sandbox
        trace_id = created.headers["x-trace-id"]

        async def trace_complete() -> list[dict[str, Any]] | None:
            # Each process exports its spans in batches as they end (a parent after its
            # children): wait for every span the assertions below look at, not for the first.
            spans = [s for s in read_spans(traced_dir) if s["traceId"] == trace_id]
            kinds = {(s["service"], s["kind"]) for s in spans}
            names = {s["name"] for s in spans}
            wanted = {("sbx-api", "SERVER"), ("sbx-orchestrator", "CONSUMER")}
            complete = wanted <= kinds and {"docker create", "docker start"} <= names
            return spans if complete and any(s["service"] == "sbx-log-shipper" for s in spans) else None

        spans = await wait_for(trace_complete, timeout=30, interval=0.2)

        executed = await http.post(
            f"/sandboxes/{sandbox['id']}/exec", json={"command": "echo traced"}, headers=user.headers
        )
        assert executed.status_code == 200, executed.text
        exec_trace_id = executed.headers["x-trace-id"]

        async def exec_traced() -> list[dict[str, Any]] | None:
            found = [s for s in read_spans(traced_dir) if s["traceId"] == exec_trace_id]
            answered = any(s["service"] == "sbx-orchestrator" and s["name"] == "exec" for s in found)
            requested = any(s["service"] == "sbx-api" and s["kind"] == "SERVER" for s in found)
            return found if answered and requested else None

        exec_spans = await wait_for(exec_traced, timeout=30, interval=0.2)
        await http.delete(f"/sandboxes/{sandbox['id']}?wait=true", headers=user.headers)

    by_id = {s["spanId"]: s for s in spans}
    (request,) = [s for s in spans if s["service"] == "sbx-api" and s["kind"] == "SERVER"]
    assert request["name"] == "POST /sandboxes"
    assert request["attributes"]["http.response.status_code"] == created.status_code

    # The orchestrator's span for the create command is a descendant of the API request.
    (command,) = [s for s in spans if s["service"] == "sbx-orchestrator" and s["kind"] == "CONSUMER"]
    assert command["attributes"]["sbx.verb"] == "create"
    assert command["attributes"]["sbx.sandbox_id"] == sandbox["id"]
    assert request in ancestors(command, by_id)

    # Its Docker calls are its children, in the same trace.
    docker_calls = {s["name"] for s in spans if s["parentSpanId"] == command["spanId"]}
    assert {"docker create", "docker start"} <= docker_calls

    # The log shipper took up the `running` event the orchestrator published in that trace.
    (follow,) = [s for s in spans if s["service"] == "sbx-log-shipper"]
    assert follow["attributes"]["sbx.sandbox_id"] == sandbox["id"]
    assert command in ancestors(follow, by_id)

    # An exec request is one trace too: the API's request, then the orchestrator's answer.
    exec_by_id = {s["spanId"]: s for s in exec_spans}
    (exec_request,) = [s for s in exec_spans if s["service"] == "sbx-api" and s["kind"] == "SERVER"]
    assert exec_request["name"] == "POST /sandboxes/{sandbox_id}/exec"
    (answer,) = [s for s in exec_spans if s["service"] == "sbx-orchestrator" and s["name"] == "exec"]
    assert answer["attributes"]["sbx.outcome"] == "ok"
    assert exec_request in ancestors(answer, exec_by_id)
