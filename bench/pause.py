"""Pause and resume through the platform versus raw Docker SDK calls, in the same run.

    uv run python -m bench.pause

`POST /sandboxes/:id/pause?wait=true` and `/resume?wait=true` (command bus, orchestrator,
event, answer) against `container.pause()` / `container.unpause()` of a container of the same
image and limits. Raw and platform samples alternate, so a machine whose speed drifts weighs on
both sides alike.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import docker
import httpx

from bench.lifecycle import CPU, MEMORY_MIB, ms, raw_create_start
from bench.stack import median, percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

ROUNDS = 40


async def interleaved_run(plat: Platform) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    client = docker.from_env()
    raw: dict[str, list[float]] = {"pause": [], "resume": []}
    ours: dict[str, list[float]] = {"pause": [], "resume": []}
    _, container = await asyncio.to_thread(raw_create_start, client)
    try:
        async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
            http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
            env = await http.post(
                "/environments",
                json={"name": "bench-pause", "image": TEST_IMAGE, "cpu": CPU, "memory": MEMORY_MIB},
            )
            response = await http.post(
                "/sandboxes?wait=true&timeout=60", json={"environmentId": env.json()["data"]["id"]}
            )
            sandbox_id = response.json()["data"]["id"]
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                await asyncio.to_thread(container.pause)
                raw["pause"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                answer = await http.post(f"/sandboxes/{sandbox_id}/pause?wait=true")
                ours["pause"].append(time.perf_counter() - t0)
                assert answer.json()["data"]["status"] == "paused", answer.text
                t0 = time.perf_counter()
                await asyncio.to_thread(container.unpause)
                raw["resume"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                answer = await http.post(f"/sandboxes/{sandbox_id}/resume?wait=true")
                ours["resume"].append(time.perf_counter() - t0)
                assert answer.json()["data"]["status"] == "running", answer.text
            await http.delete(f"/sandboxes/{sandbox_id}?wait=true&timeout=60")
    finally:
        await asyncio.to_thread(container.remove, force=True)
        client.close()
    return raw, ours


def run() -> str:
    with running_platform() as plat:
        raw, ours = asyncio.run(interleaved_run(plat))
    rows = []
    for key, label in (("pause", "pause (docker pause)"), ("resume", "resume (docker unpause)")):
        raw_values, our_values = raw[key], ours[key]
        rows.append(
            [
                label,
                ms(median(raw_values)),
                ms(percentile(raw_values, 95)),
                ms(median(our_values)),
                ms(percentile(our_values, 95)),
                f"{median(our_values) / median(raw_values):.2f}x",
                f"{(median(our_values) - median(raw_values)) * 1000:+.1f} ms",
            ]
        )
    return table(
        f"Pause and resume ({ROUNDS} rounds, ?wait=true)",
        ["operation", "raw p50", "raw p95", "platform p50", "platform p95", "p50 ratio", "p50 delta"],
        rows,
    )


if __name__ == "__main__":
    print(run())
