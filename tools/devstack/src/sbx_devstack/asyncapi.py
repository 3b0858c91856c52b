"""The platform's NATS subjects as a FastStream AsyncAPI document (`make asyncapi`).

No service runs one FastStream app for every subject (the services subscribe through FastStream
where it fits and with nats-py where it does not, and the subjects are shared by five services),
so the document is described here, once,
from what `sbx_common` defines: the subjects (`subjects.py`), the streams (`topology.py`) and the
message models (`messages.py`). Each subscriber below says who consumes a subject; each publisher
says who publishes it. The handlers are never run: the broker is never connected.

    uv run python -m sbx_devstack.asyncapi docs/asyncapi.json      # what `make asyncapi` runs
    faststream docs gen sbx_devstack.asyncapi:app                  # same document (faststream[cli])
    faststream docs serve sbx_devstack.asyncapi:app                # browse it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faststream import FastStream
from faststream.nats import NatsBroker, PullSub
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field
from sbx_common import subjects, topology
from sbx_common.broker import bound_stream
from sbx_common.hosts import HostHeartbeat
from sbx_common.messages import (
    DeadLetter,
    ExecRequest,
    ExecResult,
    FilesReply,
    FilesRequest,
    FileWatchControl,
    FileWatchFrame,
    FileWatchOpenReply,
    FileWatchOpenRequest,
    LogBatch,
    ProcessOutput,
    ProcessReply,
    ProcessRequest,
    SandboxCommand,
    SandboxEvent,
    TerminalControl,
    TerminalOpenReply,
    TerminalOpenRequest,
)

TRACE_HEADERS = (
    "Every message may carry the W3C trace context in its headers (`traceparent`, `tracestate`): "
    "the consumer's span continues the publisher's trace."
)

broker = NatsBroker(
    "nats://localhost:4222",
    description="NATS JetStream of the sandbox platform. Streams are declared only by `sbx-migrate`.",
)

# Streams as the topology declares them, bound as the services bind them: never created here.
CMD = bound_stream(topology.STREAM_CMD, "Work queue of sandbox commands.")
EVT = bound_stream(topology.STREAM_EVT, "Sandbox state changes, 7 days.")
DLQ = bound_stream(topology.STREAM_DLQ, "Commands that failed every delivery.")
LOG = bound_stream(topology.STREAM_LOG, "Log lines, 1 day, 20,000 per sandbox.")
PROC = bound_stream(topology.STREAM_PROC, "Background processes' output, live (kept in PostgreSQL), 1 day.")


class OrchestratorHealth(BaseModel):
    """Reply of `sbx.rpc.orchestrator.health`."""

    docker: str = Field(pattern="^(ok|down)$", description="State of the Docker engine.")
    runtimes: list[str] | None = Field(
        default=None, description="Container runtimes the engine offers (`runc`, `gvisor`); while it is up."
    )
    diskLimit: str | None = Field(  # noqa: N815 (the wire name)
        default=None,
        pattern="^(quota|watch)$",
        description="How a sandbox's `disk` holds there: the engine's quota, or the orchestrator's watch.",
    )


# --- Commands: api and reaper -> orchestrator ------------------------------------------------
@broker.subscriber(
    f"{subjects.CMD_PREFIX}.{{host_id}}.sandbox.{{verb}}",
    stream=CMD,
    durable="orchestrator__commands",
    pull_sub=PullSub(batch_size=1),
    title="sbx.cmd.{host_id}.sandbox.{verb}:orchestrator",
    description=(
        "Addressed to the host the sandbox (snapshot, volume) is on: the orchestrators of that host"
        " share the durable `orchestrator__commands__<host_id>` (plain `orchestrator__commands` for"
        " the host `local`), filtered to its commands. "
        "The orchestrator takes up each command once (work queue, explicit acks, backoff on "
        "failure; after the last delivery the sandbox fails and a dead letter is published). "
        "Header `Nats-Msg-Id` = the command id: JetStream drops a duplicate within 2 minutes. "
        + TRACE_HEADERS
    ),
)
async def take_command(command: SandboxCommand) -> None:
    """Create, start, stop, restart, destroy or fail one sandbox, apply its network policy, take
    or delete a snapshot (`snapshotId`), delete a volume (`volumeId`) (verbs of
    `sbx_common.status`)."""


command_publisher = broker.publisher(
    f"{subjects.CMD_PREFIX}.{{host_id}}.sandbox.{{verb}}",
    stream=CMD,
    title="sbx.cmd.{host_id}.sandbox.{verb}:api,reaper",
    description=(
        "Published by the API after it recorded the sandbox's desired state, and by the reaper "
        "(TTL expiry, repairs; `reason` says why). " + TRACE_HEADERS
    ),
    schema=SandboxCommand,
)


# --- Events: orchestrator -> api (SSE / WebSocket), reaper ----------------------------------------
@broker.subscriber(
    f"{subjects.EVT_PREFIX}.{{owner_id}}.{{sandbox_id}}.{{status}}",
    stream=EVT,
    title="sbx.evt.{owner_id}.{sandbox_id}.{status}:api",
    description=(
        "The API streams a user's events (filtered on the owner in the subject) to "
        "`GET /sandboxes/:id/events` and waits on them for `?wait=true`."
    ),
)
async def follow_events(event: SandboxEvent) -> None:
    """A sandbox reached a status (facts in the past tense: `sandbox.running`, ...)."""


event_publisher = broker.publisher(
    f"{subjects.EVT_PREFIX}.{{owner_id}}.{{sandbox_id}}.{{status}}",
    stream=EVT,
    title="sbx.evt.{owner_id}.{sandbox_id}.{status}:orchestrator",
    description="Published by the orchestrator after each observed state change. " + TRACE_HEADERS,
    schema=SandboxEvent,
)


@broker.subscriber(
    f"{subjects.EVT_PREFIX}.{{owner_id}}.{{sandbox_id}}.running",
    stream=EVT,
    durable="log-shipper__events",
    pull_sub=PullSub(batch_size=100),
    title="sbx.evt.{owner_id}.{sandbox_id}.running:log-shipper",
    description="The log shipper starts following a container when its sandbox runs. " + TRACE_HEADERS,
)
async def follow_running(event: SandboxEvent) -> None:
    """Follow the logs of the sandbox's container."""


@broker.subscriber(
    f"{subjects.EVT_PREFIX}.{{owner_id}}.{{sandbox_id}}.{{status}}",
    stream=EVT,
    durable="reaper__events",
    pull_sub=PullSub(batch_size=1),
    title="sbx.evt.{owner_id}.{sandbox_id}.{status}:reaper",
    description=(
        "The reaper keeps its TTL timers current between two sweeps: a terminal status disarms "
        "a sandbox's timer, any other arms it when it expires soon."
    ),
)
async def track_expiry(event: SandboxEvent) -> None:
    """Arm or disarm the sandbox's TTL timer."""


@broker.subscriber(
    f"{subjects.EVT_PREFIX}.{{owner_id}}.{{sandbox_id}}.{{status}}",
    stream=EVT,
    durable="webhooks__events",
    pull_sub=PullSub(batch_size=20),
    title="sbx.evt.{owner_id}.{sandbox_id}.{status}:webhooks",
    description=(
        "The webhooks service records a delivery per matching webhook of the owner (before the "
        "ack), then POSTs the event object, signed, to each (docs/webhooks.md)."
    ),
)
async def deliver_to_webhooks(event: SandboxEvent) -> None:
    """Record and send the event's webhook deliveries."""


@broker.subscriber(
    f"{subjects.EVT_PREFIX}.{{owner_id}}.{{sandbox_id}}.{{status}}",
    title="sbx.evt.{owner_id}.{sandbox_id}.{status}:metrics-collector",
    description=(
        "The metrics collector reads only the subject (core NATS, no durable): `stopping`, "
        "`stopped`, `destroyed`, `failed`, `expired` stop a sandbox's sampling and delete its "
        "key; `running` starts it."
    ),
)
async def track_sampling(event: SandboxEvent) -> None:
    """Start or stop sampling the sandbox."""


# --- Logs: log-shipper -> api (GET /sandboxes/:id/logs, WebSocket tail) ----------------------
log_publisher = broker.publisher(
    f"{subjects.LOG_PREFIX}.{{sandbox_id}}",
    stream=LOG,
    title="sbx.log.{sandbox_id}:log-shipper",
    description=(
        "Consecutive lines of one sandbox, numbered without gaps, published after they are stored "
        "in PostgreSQL. Header `Nats-Msg-Id` = `<sandboxId>:<firstSeq>-<lastSeq>`."
    ),
    schema=LogBatch,
)


@broker.subscriber(
    f"{subjects.LOG_PREFIX}.{{sandbox_id}}",
    stream=LOG,
    title="sbx.log.{sandbox_id}:api",
    description="The API's log WebSocket reads stored lines, then follows new batches here.",
)
async def tail_logs(batch: LogBatch) -> None:
    """Live tail of one sandbox's logs."""


# --- Process output: orchestrator -> api (GET .../processes/:pid/output, WebSocket) ----------
process_output_publisher = broker.publisher(
    f"{subjects.PROC_PREFIX}.{{sandbox_id}}.{{process_id}}",
    stream=PROC,
    title="sbx.proc.{sandbox_id}.{process_id}:orchestrator",
    description=(
        "One chunk of a background process's output (numbered per process without gaps), published "
        "after it is stored in PostgreSQL, or the process's end. Header `Nats-Msg-Id` = "
        "`<processId>:<seq>` (`<processId>:exit` for the end)."
    ),
    schema=ProcessOutput,
)


@broker.subscriber(
    f"{subjects.PROC_PREFIX}.{{sandbox_id}}.{{process_id}}",
    stream=PROC,
    title="sbx.proc.{sandbox_id}.{process_id}:api",
    description="The API's process WebSocket reads stored output, then follows new chunks here.",
)
async def follow_process(output: ProcessOutput) -> None:
    """Live output of one background process."""


# --- Metrics: metrics-collector -> api (GET /sandboxes/:id/metrics) ---------------------------
metrics_publisher = broker.publisher(
    f"{subjects.METRICS_KV_PREFIX}.{{sandbox_id}}",
    title="$KV.sbx_metrics.{sandbox_id}:metrics-collector",
    description=(
        "The latest sample of a running sandbox in the KV bucket `sbx_metrics` (key = sandbox "
        "id, 5 minutes TTL): a put is a message on this subject; the API reads the bucket."
    ),
)


# --- Hosts: orchestrator -> api, reaper, sbx-admin (placement, lost hosts) ---------------------
host_heartbeat_publisher = broker.publisher(
    f"{subjects.HOSTS_KV_PREFIX}.{{host_id}}",
    title="$KV.sbx_hosts.{host_id}:orchestrator",
    description=(
        "Each host's heartbeat in the KV bucket `sbx_hosts` (key = host id), put every 3 s: "
        "capacity, runtimes, labels, whether its engine answers. The API places sandboxes on "
        "hosts with a fresh one; the reaper gives up the sandboxes of a host whose heartbeat is "
        "older than `SBX_HOST_GRACE` (docs/scale-out.md)."
    ),
    schema=HostHeartbeat,
)


# --- Dead letters: orchestrator -> operators -------------------------------------------------
dead_letter_publisher = broker.publisher(
    f"{subjects.DLQ_PREFIX}.{{verb}}",
    stream=DLQ,
    title="sbx.dlq.{verb}:orchestrator",
    description="A command given up after its last delivery, with the error; kept 30 days.",
    schema=DeadLetter,
)


# --- Notes on core NATS: orchestrator -> api (?wait on snapshots) ------------------------------
snapshot_note_publisher = broker.publisher(
    f"{subjects.NOTE_SNAPSHOT_PREFIX}.{{snapshot_id}}",
    title="sbx.note.snapshot.{snapshot_id}:orchestrator",
    description=(
        "Empty, not stored: the orchestrator handled a snapshot's command (its row may have "
        "changed). The API's `POST /sandboxes/:id/snapshots?wait=true` reads the snapshot again "
        "when it hears it."
    ),
)


# --- Request/reply on core NATS: api -> orchestrator --------------------------------------------
@broker.subscriber(
    subjects.rpc("{host_id}", subjects.RPC_EXEC),
    title="sbx.rpc.{host_id}.exec:orchestrator",
    description="Run a command in a sandbox; the reply is an ExecResult. " + TRACE_HEADERS,
)
async def run_exec(request: ExecRequest) -> ExecResult:
    """Exec through the Docker exec API, with a timeout and truncated output."""
    raise NotImplementedError


@broker.subscriber(
    subjects.rpc("{host_id}", subjects.RPC_PROCESS),
    title="sbx.rpc.{host_id}.process:orchestrator",
    description="Start a background process, or write to, signal or resize one. " + TRACE_HEADERS,
)
async def process_request(request: ProcessRequest) -> ProcessReply:
    """Through the sandbox's in-sandbox agent; the process's output follows on `sbx.proc.*`."""
    raise NotImplementedError


@broker.subscriber(
    subjects.rpc("{host_id}", subjects.RPC_TERMINAL_OPEN),
    title="sbx.rpc.{host_id}.terminal.open:orchestrator",
    description=(
        "Open a PTY session; then raw bytes flow on `sbx.term.<session>.in` (keystrokes), "
        "`.out` (screen) and `.ctl` (JSON resize and close)."
    ),
)
async def open_terminal(request: TerminalOpenRequest) -> TerminalOpenReply:
    """Start an interactive shell with a TTY in the sandbox."""
    raise NotImplementedError


@broker.subscriber(
    subjects.rpc("{host_id}", subjects.RPC_FILES),
    title="sbx.rpc.{host_id}.files:orchestrator",
    description=(
        "A file operation on a sandbox (stat, list, mkdir, delete, move) answered with a FilesReply;"
        " `read` and `write` open a transfer whose bytes then flow on `sbx.files.<transfer>.up` and"
        " `.down` (header `Sbx-Kind`: data, credit, end, result, cancel; at most 4 frames of up to 1 MiB"
        " unconsumed; see sbx_common/filestream.py)."
    ),
)
async def file_operation(request: FilesRequest) -> FilesReply:
    """Reach a sandbox's files: by exec while it runs, by Docker's archive API otherwise."""
    raise NotImplementedError


@broker.subscriber(
    subjects.rpc("{host_id}", subjects.RPC_FSWATCH_OPEN),
    title="sbx.rpc.{host_id}.fswatch.open:orchestrator",
    description=(
        "Open a file watch (the agent's inotify) on a directory of a running sandbox; its changes"
        " then come on `sbx.fswatch.<watch>.out` and the API's keepalives and close go on `.ctl`."
    ),
)
async def open_file_watch(request: FileWatchOpenRequest) -> FileWatchOpenReply:
    """Ask the sandbox's agent to watch the directory (path resolved inside the sandbox)."""
    raise NotImplementedError


@broker.subscriber(
    f"{subjects.FSWATCH_PREFIX}.{{watch_id}}.out",
    title="sbx.fswatch.{watch_id}.out:api",
    description="A file watch's changes, `overflow` when some were dropped, and `end` last.",
)
async def file_watch_frame(frame: FileWatchFrame) -> None:
    """One change (or the end) of a file watch."""


@broker.subscriber(
    f"{subjects.FSWATCH_PREFIX}.{{watch_id}}.ctl",
    title="sbx.fswatch.{watch_id}.ctl:orchestrator",
    description="`keepalive` (a request, answered) and `close` from the API.",
)
async def file_watch_control(control: FileWatchControl) -> None:
    """One control message of a file watch."""


@broker.subscriber(
    subjects.RPC_ORCHESTRATOR_HEALTH,
    title="sbx.rpc.orchestrator.health:orchestrator",
    description=(
        "The API's `GET /health` asks whether the orchestrator reaches Docker; `GET /info` what the"
        " engine offers. Any host's orchestrator answers; `sbx.rpc.{host_id}.orchestrator.health`"
        " asks one host's."
    ),
)
async def orchestrator_health() -> OrchestratorHealth:
    """Answers `{"docker": "ok", "runtimes": [...], "diskLimit": ...}` or `{"docker": "down"}`."""
    raise NotImplementedError


@broker.subscriber(
    f"{subjects.TERM_PREFIX}.{{session_id}}.ctl",
    title="sbx.term.{session_id}.ctl:api,orchestrator",
    description=(
        "Control of one terminal session, both ways: `resize`, `keepalive`, `close` from the API, "
        "`exit` from the orchestrator. A `keepalive` sent as a request is answered with a "
        "`keepalive` from the orchestrator, so the API learns when it is gone. "
        "Keystrokes go on `sbx.term.<session>.in` and the screen "
        "comes back on `sbx.term.<session>.out`, as raw bytes."
    ),
)
async def terminal_control(control: TerminalControl) -> None:
    """One control message of a terminal session."""


app = FastStream(
    broker,
    specification=AsyncAPI(
        broker,
        title="Sandbox Platform messaging",
        version="1",
        description=(
            "Subjects, streams and message schemas joining the five services (api, orchestrator, "
            "log-shipper, reaper, metrics-collector, webhooks). Generated from `sbx_common` by "
            "`make asyncapi`; see docs/architecture.md."
        ),
    ),
)


def document() -> dict[str, Any]:
    """The AsyncAPI document, as `faststream docs gen` would write it."""
    schema: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return schema


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the platform's AsyncAPI document.")
    parser.add_argument("out", nargs="?", default="docs/asyncapi.json", help="'-' for stdout")
    args = parser.parse_args(argv)
    text = json.dumps(document(), indent=2, sort_keys=True) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
