"""Exec and background processes through the in-sandbox agent, beside raw Docker execs.

    uv run python -m bench agent

1. `POST /sandboxes/:id/exec` of `true` (API -> NATS -> orchestrator -> the sandbox's persistent
   agent session) against a docker-SDK `exec_run` of the same command on the same container,
   samples alternating one by one. Target: the platform's p50 at most 0.5x the raw one.
2. Process start to first output byte: `POST /sandboxes/:id/processes` of `echo hi`, then its
   WebSocket, until the first output frame; against a raw `exec_create` + `exec_start(socket)`
   of the same command until its first byte.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from typing import Any

import docker
import httpx
import websockets

from bench.stack import median, percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

EXECS = 200
WARMUP = 5
TARGET_RATIO = 0.5
PROCESSES = 40


def raw_first_byte(api: docker.APIClient, container: str) -> float:
    """A raw exec of `echo hi`: from its creation to its first output byte."""
    started = time.perf_counter()
    exec_id = api.exec_create(container, ["echo", "hi"])["Id"]
    wrapper: Any = api.exec_start(exec_id, socket=True)
    sock: socket.socket = getattr(wrapper, "_sock", wrapper)
    sock.settimeout(10)
    sock.recv(1)
    elapsed = time.perf_counter() - started
    sock.close()
    return elapsed


async def platform_first_byte(http: httpx.AsyncClient, ws_base: str, token: str, sandbox_id: str) -> float:
    """`POST .../processes` of `echo hi`, then its socket, until the first output frame."""
    started = time.perf_counter()
    created = await http.post(f"/sandboxes/{sandbox_id}/processes", json={"command": ["echo", "hi"]})
    assert created.status_code == 201, created.text
    process_id = created.json()["data"]["id"]
    url = f"{ws_base}/ws/sandboxes/{sandbox_id}/processes/{process_id}?token={token}"
    async with websockets.connect(url) as ws:
        while json.loads(await ws.recv())["type"] != "output":
            pass
    return time.perf_counter() - started


async def measure(plat: Platform) -> dict[str, list[float]]:
    client = docker.from_env()
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        token = signup.json()["data"]["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        env = await http.post("/environments", json={"name": "bench-agent", "image": TEST_IMAGE})
        response = await http.post(
            "/sandboxes?wait=true&timeout=60", json={"environmentId": env.json()["data"]["id"]}
        )
        sandbox = response.json()["data"]
        assert sandbox["status"] == "running", sandbox
        container = client.containers.get(f"sbx-{sandbox['id']}")
        path = f"/sandboxes/{sandbox['id']}/exec"
        raw: list[float] = []
        ours: list[float] = []
        for i in range(EXECS + WARMUP):
            started = time.perf_counter()
            await asyncio.to_thread(container.exec_run, ["true"])
            raw_sample = time.perf_counter() - started
            started = time.perf_counter()
            result = await http.post(path, json={"command": ["true"]})
            ours_sample = time.perf_counter() - started
            assert result.status_code == 200, result.text
            if i >= WARMUP:  # the first exec opens the agent session
                raw.append(raw_sample)
                ours.append(ours_sample)
        raw_start: list[float] = []
        ours_start: list[float] = []
        for _ in range(PROCESSES):
            raw_start.append(await asyncio.to_thread(raw_first_byte, client.api, container.id))
            ours_start.append(await platform_first_byte(http, plat.ws_url, token, sandbox["id"]))
    client.close()
    return {"raw": raw, "ours": ours, "raw_start": raw_start, "ours_start": ours_start}


def run() -> str:
    with running_platform(services=("orchestrator", "api")) as plat:
        samples = asyncio.run(measure(plat))
    raw, ours = samples["raw"], samples["ours"]

    def ms(value: float) -> str:
        return f"{value * 1000:.1f} ms"

    ratio = median(ours) / median(raw)
    verdict = "met" if ratio <= TARGET_RATIO else "not met"
    raw_start, ours_start = samples["raw_start"], samples["ours_start"]
    start_table = table(
        f"Process start to first output byte ({PROCESSES} processes of `echo hi`, alternating)",
        ["path", "p50", "p95", "p50 ratio"],
        [
            [
                "raw exec_create + exec_start(socket), first byte",
                ms(median(raw_start)),
                ms(percentile(raw_start, 95)),
                "1x",
            ],
            [
                "POST .../processes, then its WebSocket's first output frame",
                ms(median(ours_start)),
                ms(percentile(ours_start, 95)),
                f"{median(ours_start) / median(raw_start):.2f}x",
            ],
        ],
    )
    exec_table = table(
        f"Exec round trip through the agent ({EXECS} execs of `true`, alternating)",
        ["path", "p50", "p95", "p50 ratio", "target"],
        [
            [
                "raw docker-SDK exec_run, same container",
                ms(median(raw)),
                ms(percentile(raw, 95)),
                "1x",
                "",
            ],
            [
                "POST /sandboxes/:id/exec (API, NATS, orchestrator, agent)",
                ms(median(ours)),
                ms(percentile(ours, 95)),
                f"{ratio:.2f}x",
                f"<= {TARGET_RATIO}x: {verdict}",
            ],
        ],
    )
    return exec_table + "\n" + start_table


if __name__ == "__main__":
    print(run())
