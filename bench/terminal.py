"""Terminal keystroke echo: the platform's WebSocket terminal beside a raw Docker exec socket.

    uv run python -m bench.terminal

One character is typed at a shell prompt and the time until its echo comes back is measured,
KEYSTROKES times, through `/ws/sandboxes/:id/terminal` (API -> NATS -> orchestrator -> Docker
exec PTY and back) and through a docker-SDK exec socket with a TTY on the same sandbox.
"""

from __future__ import annotations

import asyncio
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

KEYSTROKES = 300


def raw_exec_round_trips(container_name: str) -> list[float]:
    api = docker.from_env().api
    exec_id = api.exec_create(container_name, ["/bin/sh"], stdin=True, tty=True)["Id"]
    wrapper: Any = api.exec_start(exec_id, tty=True, socket=True)
    sock: socket.socket = getattr(wrapper, "_sock", wrapper)
    sock.settimeout(10)
    time.sleep(0.5)
    sock.recv(65536)  # the prompt
    samples = []
    for i in range(KEYSTROKES):
        key = b"abcdefghij"[i % 10 : i % 10 + 1]
        started = time.perf_counter()
        sock.sendall(key)
        while key not in sock.recv(65536):
            pass
        samples.append(time.perf_counter() - started)
    sock.sendall(b"\x03exit\n")
    sock.close()
    return samples


async def platform_round_trips(plat: Platform, sandbox_id: str, token: str) -> list[float]:
    url = f"{plat.ws_url}/ws/sandboxes/{sandbox_id}/terminal?token={token}"
    samples = []
    async with websockets.connect(url) as ws:
        assert await ws.recv() == '{"type":"ready"}'
        await asyncio.sleep(0.5)
        while True:  # the prompt
            try:
                await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                break
        for i in range(KEYSTROKES):
            key = "abcdefghij"[i % 10]
            started = time.perf_counter()
            await ws.send(key.encode())
            while True:
                frame = await asyncio.wait_for(ws.recv(), 10)
                if isinstance(frame, bytes) and key.encode() in frame:
                    break
            samples.append(time.perf_counter() - started)
    return samples


async def measure(plat: Platform) -> tuple[list[float], list[float]]:
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        token = signup.json()["data"]["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        env = await http.post("/environments", json={"name": "bench-terminal", "image": TEST_IMAGE})
        response = await http.post(
            "/sandboxes?wait=true&timeout=60", json={"environmentId": env.json()["data"]["id"]}
        )
        sandbox = response.json()["data"]
        assert sandbox["status"] == "running", sandbox
        raw = await asyncio.to_thread(raw_exec_round_trips, f"sbx-{sandbox['id']}")
        ours = await platform_round_trips(plat, sandbox["id"], token)
        return raw, ours


def run() -> str:
    with running_platform(services=("orchestrator", "api")) as plat:
        raw, ours = asyncio.run(measure(plat))

    def ms(values: list[float], pct: float) -> str:
        return f"{percentile(values, pct) * 1000:.2f} ms"

    return table(
        f"Terminal keystroke echo round trip ({KEYSTROKES} keystrokes)",
        ["path", "p50", "p99", "max"],
        [
            ["raw docker exec socket (TTY)", f"{median(raw) * 1000:.2f} ms", ms(raw, 99), ms(raw, 100)],
            [
                "WebSocket terminal (API, NATS, orchestrator)",
                f"{median(ours) * 1000:.2f} ms",
                ms(ours, 99),
                ms(ours, 100),
            ],
        ],
    )


if __name__ == "__main__":
    print(run())
