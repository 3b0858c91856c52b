"""Where a lifecycle request's time goes: API, bus, orchestrator, Docker, event, answer.

    uv run python -m bench.breakdown [rounds]

For resume, pause, stop, start, cold create, warm-pool create and destroy through `?wait=true`,
each sample is cut at what can be seen from outside the services: the command as it crosses NATS
(a monitor subscribed to the command subjects), the orchestrator's span for the command and its
Docker calls (its traces, written to a file: `OTEL_TRACES_EXPORTER=sbx_jsonfile`, orchestrator
only), the sandbox's events as they cross NATS, and the answer. Every stamp is wall-clock
nanoseconds on this one machine.
A bare authenticated `GET /sandboxes/:id` is timed beside them: the API's own floor per request,
and, alternated with the destroys, a raw docker-SDK remove of a container made with the platform's
settings on its network (`bench.create.raw_like_platform`): what Docker's own part of a destroy
takes in the same run, to set beside the orchestrator's remove call.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import docker
import httpx
from nats.aio.msg import Msg
from sbx_common import subjects
from sbx_orchestrator.engine.firewall import network_name

from bench.create import POOL, _pool_full, holders_quiet, raw_like_platform
from bench.lifecycle import CPU, MEMORY_MIB
from bench.stack import median, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.nats_auth import admin_connect
from tests.support.platform import Platform

ROUNDS = 30
SETTLED = {"running", "stopped", "paused", "destroyed", "expired", "failed"}


@dataclass
class Sample:
    t0: int
    end: int = 0
    command_id: str | None = None
    command_seen: int = 0
    first_event: int = 0
    settled_event: int = 0


@dataclass
class Monitor:
    """Stamps the commands and events crossing NATS, by sandbox id."""

    commands: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))

    async def on_command(self, msg: Msg) -> None:
        now = time.time_ns()
        body = json.loads(msg.data)
        sandbox = str(body.get("sandboxId") or body.get("sandbox_id"))
        self.commands[sandbox].append((now, str(body["id"])))

    async def on_event(self, msg: Msg) -> None:
        now = time.time_ns()
        parts = msg.subject.split(".")
        self.events[parts[3]].append((now, parts[4]))


def _spans(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Command spans by command id, and Docker call spans by trace id."""
    commands: dict[str, dict[str, Any]] = {}
    docker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not path.exists():
        return commands, docker
    for line in path.read_text().splitlines():
        span = json.loads(line)
        if span["name"].startswith("command "):
            commands[str(span["attributes"].get("sbx.command_id"))] = span
        elif span["name"].startswith("docker "):
            docker[span["traceId"]].append(span)
    return commands, docker


def _raw_remove(client: docker.DockerClient, network: str) -> float:
    """A container with the platform's settings made and started, then timed as it is removed."""
    _, container_id = raw_like_platform(client, network)
    t0 = time.perf_counter()
    client.api.remove_container(container_id, force=True)
    return time.perf_counter() - t0


async def measure(plat: Platform, trace_file: Path, rounds: int) -> dict[str, list[dict[str, float]]]:
    monitor = Monitor()
    nc = await admin_connect(plat.base_env["SBX_NATS_URL"], "bench-breakdown")
    await nc.subscribe(f"{subjects.CMD_PREFIX}.>", cb=monitor.on_command)
    await nc.subscribe(f"{subjects.EVT_PREFIX}.>", cb=monitor.on_event)
    samples: dict[str, list[tuple[str, Sample]]] = defaultdict(list)
    reads: list[float] = []
    raw_removes: list[float] = []
    client = docker.from_env()
    instance = plat.base_env["SBX_INSTANCE"]
    network = network_name(instance)
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
        env = await http.post(
            "/environments",
            json={"name": "bench-breakdown", "image": TEST_IMAGE, "cpu": CPU, "memory": MEMORY_MIB},
        )
        env_id = env.json()["data"]["id"]

        async def timed(kind: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
            sample = Sample(t0=time.time_ns())
            response = await http.request(method, url, **kwargs)
            sample.end = time.time_ns()
            data: dict[str, Any] = response.json()["data"]
            samples[kind].append((str(data["id"]), sample))
            return data

        create: dict[str, Any] = {"json": {"environmentId": env_id}}
        await http.post("/sandboxes?wait=true&timeout=60", json=create["json"])  # image, network ready
        sandbox = await timed("create", "POST", "/sandboxes?wait=true&timeout=60", **create)
        for _ in range(rounds):
            await timed("pause", "POST", f"/sandboxes/{sandbox['id']}/pause?wait=true")
            await timed("resume", "POST", f"/sandboxes/{sandbox['id']}/resume?wait=true")
            t0 = time.perf_counter()
            await http.get(f"/sandboxes/{sandbox['id']}")
            reads.append(time.perf_counter() - t0)
        for _ in range(rounds // 2):
            await timed("stop", "POST", f"/sandboxes/{sandbox['id']}/stop?wait=true&timeout=60")
            await timed("start", "POST", f"/sandboxes/{sandbox['id']}/start?wait=true&timeout=60")
        await timed("destroy", "DELETE", f"/sandboxes/{sandbox['id']}?wait=true&timeout=60")
        for _ in range(rounds // 2):
            # Network holders neither made nor removed during a sample (bench.create).
            await holders_quiet(client, instance)
            made = await timed("create", "POST", "/sandboxes?wait=true&timeout=60", **create)
            await holders_quiet(client, instance)
            await timed("destroy", "DELETE", f"/sandboxes/{made['id']}?wait=true&timeout=60")
            await holders_quiet(client, instance)
            raw_removes.append(await asyncio.to_thread(_raw_remove, client, network))
        # Warm-pool creates: a full pool before each (its refill is not what a sample times).
        warm = await http.post(
            "/environments",
            json={
                "name": "bench-breakdown-warm",
                "image": TEST_IMAGE,
                "cpu": CPU,
                "memory": MEMORY_MIB,
                "warmPool": POOL,
            },
        )
        warm_body = {"environmentId": warm.json()["data"]["id"]}
        db = await asyncpg.connect(plat.base_env["SBX_DATABASE_URL"])
        try:
            for _ in range(rounds // 2):
                await _pool_full(db, warm_body["environmentId"])
                made = await timed("warm create", "POST", "/sandboxes?wait=true&timeout=60", json=warm_body)
                await http.delete(f"/sandboxes/{made['id']}?wait=true&timeout=60")
            await http.put(f"/environments/{warm_body['environmentId']}", json={"warmPool": 0})
        finally:
            await db.close()
    client.close()
    await asyncio.sleep(0.5)
    await nc.close()
    command_spans, docker_spans = _spans(trace_file)
    stages: dict[str, list[dict[str, float]]] = defaultdict(list)
    for kind, entries in samples.items():
        for sandbox_id, sample in entries:
            row = _stages(sample, sandbox_id, monitor, command_spans, docker_spans)
            if row is not None:
                stages[kind].append(row)
    stages["read"] = [{"total": r * 1000} for r in reads]
    stages["raw remove"] = [{"total": r * 1000} for r in raw_removes]
    return stages


def _stages(
    sample: Sample,
    sandbox_id: str,
    monitor: Monitor,
    command_spans: dict[str, dict[str, Any]],
    docker_spans: dict[str, list[dict[str, Any]]],
) -> dict[str, float] | None:
    seen = [(t, c) for t, c in monitor.commands.get(sandbox_id, []) if sample.t0 <= t <= sample.end]
    if not seen:
        return None
    command_seen, command_id = seen[0]
    span = command_spans.get(command_id)
    events = [(t, s) for t, s in monitor.events.get(sandbox_id, []) if command_seen <= t <= sample.end]
    settled = [t for t, s in events if s in SETTLED]
    if span is None or not settled:
        return None
    # Calls the command made after its settled event (a destroyed sandbox's network holder
    # removed in the background) are not on the answer's path.
    calls = sorted(
        (c for c in docker_spans.get(span["traceId"], []) if c["start"] < settled[0]),
        key=lambda s: s["start"],
    )
    docker_ms = sum(c["end"] - c["start"] for c in calls) / 1e6
    first_call = calls[0]["start"] if calls else span["end"]
    last_call = calls[-1]["end"] if calls else span["start"]
    ms = 1e-6
    return {
        "total": (sample.end - sample.t0) * ms,
        "api until published": (command_seen - sample.t0) * ms,
        "bus to orchestrator": (span["start"] - command_seen) * ms,
        "orchestrator before docker": (first_call - span["start"]) * ms,
        "docker calls": docker_ms,
        "docker span (first to last)": (last_call - first_call) * ms if calls else 0.0,
        "after docker until settled event": (settled[0] - last_call) * ms,
        "settled event to answer": (sample.end - settled[0]) * ms,
        "docker calls (count)": float(len(calls)),
        **{
            f"  docker {c['name'].removeprefix('docker ')} #{i}": (c["end"] - c["start"]) * ms
            for i, c in enumerate(calls)
        },
    }


def run(rounds: int = ROUNDS) -> str:
    with tempfile.TemporaryDirectory(prefix="sbx-breakdown-") as tmp:
        trace_file = Path(tmp) / "spans.jsonl"
        extra = {"OTEL_TRACES_EXPORTER": "sbx_jsonfile", "SBX_TRACE_FILE": str(trace_file)}
        with running_platform(service_env={"orchestrator": extra}) as plat:
            stages = asyncio.run(measure(plat, trace_file, rounds))
    names = [
        "total",
        "api until published",
        "bus to orchestrator",
        "orchestrator before docker",
        "docker calls",
        "docker span (first to last)",
        "after docker until settled event",
        "settled event to answer",
        "docker calls (count)",
    ]
    kinds = ["resume", "pause", "stop", "start", "create", "warm create", "destroy"]
    # Each call of a cold create and of a destroy, in order (the commonest sequence of calls).
    for kind in ("create", "destroy"):
        calls = sorted({k for row in stages.get(kind, []) for k in row if k.startswith("  docker")})
        names += [f"{k} ({kind})" for k in sorted(calls, key=lambda k: int(k.rpartition("#")[2]))]
        for row in stages.get(kind, []):
            for k in calls:
                if k in row:
                    row[f"{k} ({kind})"] = row[k]
    rows = []
    for name in names:
        cells = []
        for kind in kinds:
            values = [row[name] for row in stages.get(kind, []) if name in row]
            cells.append(f"{median(values):.1f}" if values else "")
        rows.append([name, *cells])
    out = table(
        "Where the time goes (median ms per stage; Docker calls from the orchestrator's spans)",
        ["stage", *kinds],
        rows,
    )
    counts = ", ".join(f"{k}: {len(stages.get(k, []))}" for k in kinds)
    read = median([r["total"] for r in stages["read"]])
    raw = median([r["total"] for r in stages["raw remove"]])
    out += (
        f"\nSamples: {counts}. Bare authenticated GET /sandboxes/:id p50: {read:.1f} ms. Raw remove of"
        f" a container with the platform's settings, alternated with the destroys: p50 {raw:.1f} ms\n"
    )
    return out


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS))
