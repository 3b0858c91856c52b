"""sbx_common.telemetry: set-up from OTEL_* variables, and a trace continued through NATS headers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sbx_common import telemetry

from tests.support.nats_auth import admin_connect


async def test_a_trace_continues_through_nats_message_headers(nats_url: str) -> None:
    exporter = telemetry.install_in_memory_exporter()
    exporter.clear()
    nc = await admin_connect(nats_url, "tests-telemetry")
    subject = f"tests.telemetry.{uuid.uuid4().hex}"
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_message(msg: Msg) -> None:
        await received.put(msg)

    await nc.subscribe(subject, cb=on_message)
    try:
        with telemetry.tracer().start_as_current_span("POST /sandboxes", kind=SpanKind.SERVER) as request:
            headers = telemetry.inject_headers({"Nats-Msg-Id": "command-1"})
            await nc.publish(subject, b"{}", headers=headers)
        msg = await asyncio.wait_for(received.get(), timeout=10)
    finally:
        await nc.close()

    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == "command-1"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", msg.headers["traceparent"])
    # The consuming side: a span per message, and child spans for the work it does.
    with telemetry.consumer_span("orchestrator create", msg.headers, {"verb": "create"}) as handling:
        with telemetry.child_span("docker.create"):
            pass
        assert telemetry.current_trace_id() == trace.format_trace_id(request.get_span_context().trace_id)

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"POST /sandboxes", "orchestrator create", "docker.create"}
    trace_ids = {span.get_span_context().trace_id for span in spans.values()}
    assert len(trace_ids) == 1
    consumer = spans["orchestrator create"]
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.parent is not None
    assert consumer.parent.span_id == request.get_span_context().span_id
    assert consumer.attributes == {"verb": "create"}
    docker_call = spans["docker.create"]
    assert docker_call.parent is not None
    assert docker_call.parent.span_id == handling.get_span_context().span_id


def test_a_message_without_trace_context_starts_a_new_trace() -> None:
    exporter = telemetry.install_in_memory_exporter()
    exporter.clear()
    with telemetry.consumer_span("orchestrator stop", None):
        pass
    with telemetry.consumer_span("orchestrator stop", {"Nats-Msg-Id": "x", "traceparent": "garbage"}):
        pass
    first, second = exporter.get_finished_spans()
    assert first.parent is None
    assert second.parent is None
    assert first.get_span_context().trace_id != second.get_span_context().trace_id


SCRIPT = """
from sbx_common import telemetry
provider = telemetry.setup_telemetry("orchestrator")
print("provider" if provider else "no provider", flush=True)
with telemetry.child_span("docker ping"):  # outside a trace: not recorded
    pass
with telemetry.consumer_span("command start", None, {"verb": "start"}):
    with telemetry.child_span("docker start", {"container": "sbx-1"}):
        pass
"""


def run_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "SBX_TRACE_FILE"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_no_exporter_by_default() -> None:
    result = run_with({})
    assert result.stdout.splitlines() == ["no provider"]


def test_json_lines_exporter_writes_every_span_with_the_service_name(tmp_path: Path) -> None:
    trace_file = tmp_path / "spans.jsonl"
    run_with({"OTEL_TRACES_EXPORTER": "sbx_jsonfile", "SBX_TRACE_FILE": str(trace_file)})
    docker, command = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert (docker["name"], command["name"]) == ("docker start", "command start")
    assert {docker["service"], command["service"]} == {"sbx-orchestrator"}
    assert docker["attributes"] == {"container": "sbx-1"}
    assert command["kind"] == "CONSUMER"
    assert re.fullmatch(r"[0-9a-f]{32}", command["traceId"])
    assert command["parentSpanId"] is None
    assert docker["parentSpanId"] == command["spanId"]
    assert docker["traceId"] == command["traceId"]


def test_otel_service_name_and_the_console_exporter_are_honoured() -> None:
    result = run_with({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "orchestrator-eu-1"})
    assert result.stdout.startswith("provider\n")
    first_span, _ = json.JSONDecoder().raw_decode(result.stdout.split("\n", 1)[1])
    assert first_span["name"] == "docker start"
    assert first_span["resource"]["attributes"]["service.name"] == "orchestrator-eu-1"


def test_sdk_disabled_wins_over_an_exporter(tmp_path: Path) -> None:
    trace_file = tmp_path / "spans.jsonl"
    env = {"OTEL_TRACES_EXPORTER": "sbx_jsonfile", "SBX_TRACE_FILE": str(trace_file)}
    result = run_with({**env, "OTEL_SDK_DISABLED": "true"})
    assert result.stdout.splitlines() == ["no provider"]
    assert not trace_file.exists()
