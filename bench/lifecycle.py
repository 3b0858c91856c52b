"""Sandbox lifecycle through the platform versus raw Docker SDK calls, in the same run.

    uv run python -m bench.lifecycle

create-to-running (`POST /sandboxes?wait=true`) against a docker-SDK create+start of the same
image and limits; destroy latency; creates per second with 10 concurrent clients; exec round trip
against a raw docker-SDK exec on the same container. Raw and platform samples alternate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import docker
import httpx
from docker.models.containers import Container

from bench.stack import median, percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

SANDBOXES = 30
CONCURRENT_CLIENTS = 10
EXECS = 50
CPU = 0.5
MEMORY_MIB = 128
PIDS = 256


# The limits every raw baseline gets: the environment's CPU and memory (no swap) and the pids limit.
RAW_LIMITS = {
    "nano_cpus": int(CPU * 1e9),
    "mem_limit": f"{MEMORY_MIB}m",
    "memswap_limit": f"{MEMORY_MIB}m",
    "pids_limit": PIDS,
}


def raw_create_start(client: docker.DockerClient) -> tuple[float, Container]:
    """A docker-SDK create + start of the same image and limits the platform applies."""
    started = time.perf_counter()
    container = client.containers.create(
        TEST_IMAGE,
        name=f"sbx-bench-raw-{uuid.uuid4().hex[:8]}",
        **RAW_LIMITS,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        labels={"sbx.bench": "raw"},
    )
    container.start()
    return time.perf_counter() - started, container


def raw_exec(client: docker.DockerClient, container_id: str) -> float:
    t0 = time.perf_counter()
    exec_id = client.api.exec_create(container_id, ["true"])["Id"]
    client.api.exec_start(exec_id)
    client.api.exec_inspect(exec_id)
    return time.perf_counter() - t0


@dataclass
class Samples:
    raw: dict[str, list[float]]
    ours: dict[str, list[float]]
    throughput: float  # creates per second with CONCURRENT_CLIENTS clients


async def interleaved_run(plat: Platform) -> Samples:
    """Raw Docker and the platform take turns, sample by sample, so that a machine whose speed
    drifts (a shared VM) weighs on both sides alike."""
    client = docker.from_env()
    raw: dict[str, list[float]] = {"create": [], "destroy": [], "exec": []}
    ours: dict[str, list[float]] = {"create": [], "destroy": [], "exec": []}
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        token = signup.json()["data"]["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        env = await http.post(
            "/environments",
            json={"name": "bench", "image": TEST_IMAGE, "cpu": CPU, "memory": MEMORY_MIB},
        )
        env_id = env.json()["data"]["id"]

        for i in range(SANDBOXES):
            elapsed, container = await asyncio.to_thread(raw_create_start, client)
            raw["create"].append(elapsed)
            t0 = time.perf_counter()
            response = await http.post("/sandboxes?wait=true&timeout=60", json={"environmentId": env_id})
            ours["create"].append(time.perf_counter() - t0)
            sandbox = response.json()["data"]
            assert sandbox["status"] == "running", sandbox
            if i == 0:
                # Both on the platform's own container, turn by turn.
                name = f"sbx-{sandbox['id']}"
                for _ in range(EXECS):
                    raw["exec"].append(await asyncio.to_thread(raw_exec, client, name))
                    t0 = time.perf_counter()
                    result = await http.post(f"/sandboxes/{sandbox['id']}/exec", json={"command": ["true"]})
                    ours["exec"].append(time.perf_counter() - t0)
                    assert result.json()["data"]["exitCode"] == 0, result.text
            t0 = time.perf_counter()
            await asyncio.to_thread(container.remove, force=True)
            raw["destroy"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            response = await http.delete(f"/sandboxes/{sandbox['id']}?wait=true&timeout=60")
            ours["destroy"].append(time.perf_counter() - t0)
            assert response.json()["data"]["status"] == "destroyed", response.text

        async def client_loop(count: int) -> list[str]:
            ids = []
            for _ in range(count):
                response = await http.post("/sandboxes?wait=true&timeout=120", json={"environmentId": env_id})
                ids.append(response.json()["data"]["id"])
            return ids

        t0 = time.perf_counter()
        per_client = SANDBOXES // CONCURRENT_CLIENTS
        batches = await asyncio.gather(*(client_loop(per_client) for _ in range(CONCURRENT_CLIENTS)))
        elapsed = time.perf_counter() - t0
        throughput = (per_client * CONCURRENT_CLIENTS) / elapsed
        await asyncio.gather(
            *(http.delete(f"/sandboxes/{sid}?wait=true&timeout=120") for batch in batches for sid in batch)
        )
    client.close()
    return Samples(raw, ours, throughput)


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def run() -> str:
    extra = {
        "SBX_MAX_SANDBOXES_PER_USER": "1000",
        "SBX_MAX_CPU_PER_USER": "1000",
        "SBX_MAX_MEMORY_PER_USER": "1000000",
    }
    with running_platform(extra_env=extra) as plat:
        result = asyncio.run(interleaved_run(plat))
    raw, ours = result.raw, result.ours
    rows = []
    for key, label in (("create", "create to running"), ("destroy", "destroy"), ("exec", "exec round trip")):
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
    out = table(
        f"Sandbox lifecycle ({SANDBOXES} sandboxes, exec x{EXECS})",
        ["operation", "raw p50", "raw p95", "platform p50", "platform p95", "p50 ratio", "p50 delta"],
        rows,
    )
    rate = result.throughput
    out += f"\nCreates per second to running, {CONCURRENT_CLIENTS} concurrent clients: {rate:.2f}/s\n"
    return out


if __name__ == "__main__":
    print(run())
