"""Exec through the in-sandbox agent: the platform's exec beside a raw Docker exec.

    uv run python -m bench agent

`POST /sandboxes/:id/exec` of `true` (API -> NATS -> orchestrator -> the sandbox's persistent
agent session) against a docker-SDK `exec_run` of the same command on the same container,
samples alternating one by one. Target: the platform's p50 at most 0.5x the raw one.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import docker
import httpx

from bench.stack import median, percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

EXECS = 200
WARMUP = 5
TARGET_RATIO = 0.5


async def measure(plat: Platform) -> tuple[list[float], list[float]]:
    client = docker.from_env()
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
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
    client.close()
    return raw, ours


def run() -> str:
    with running_platform(services=("orchestrator", "api")) as plat:
        raw, ours = asyncio.run(measure(plat))

    def ms(value: float) -> str:
        return f"{value * 1000:.1f} ms"

    ratio = median(ours) / median(raw)
    verdict = "met" if ratio <= TARGET_RATIO else "not met"
    return table(
        f"Exec round trip through the agent ({EXECS} execs of `true`, alternating)",
        ["path", "p50", "p95", "p50 ratio", "target"],
        [
            ["raw docker-SDK exec_run, same container", ms(median(raw)), ms(percentile(raw, 95)), "1x", ""],
            [
                "POST /sandboxes/:id/exec (API, NATS, orchestrator, agent)",
                ms(median(ours)),
                ms(percentile(ours, 95)),
                f"{ratio:.2f}x",
                f"<= {TARGET_RATIO}x: {verdict}",
            ],
        ],
    )


if __name__ == "__main__":
    print(run())
