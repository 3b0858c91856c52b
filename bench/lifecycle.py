"""Sandbox lifecycle through the platform versus raw Docker SDK calls, in the same run.

    uv run python -m bench.lifecycle

create-to-running (`POST /sandboxes?wait=true`) against a docker-SDK create+start of the same
image and limits; destroy latency; creates per second with 10 concurrent clients; exec round trip
against a raw docker-SDK exec.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import docker
import httpx

from bench.stack import median, percentile, running_platform, table
from tests.harness import TEST_IMAGE, Platform

SANDBOXES = 30
CONCURRENT_CLIENTS = 10
EXECS = 50
CPU = 0.5
MEMORY_MIB = 128
PIDS = 256


def raw_docker() -> dict[str, list[float]]:
    client = docker.from_env()
    create_start: list[float] = []
    remove: list[float] = []
    execs: list[float] = []
    for _ in range(SANDBOXES):
        started = time.perf_counter()
        container = client.containers.create(
            TEST_IMAGE,
            name=f"sbx-bench-raw-{uuid.uuid4().hex[:8]}",
            nano_cpus=int(CPU * 1e9),
            mem_limit=f"{MEMORY_MIB}m",
            memswap_limit=f"{MEMORY_MIB}m",
            pids_limit=PIDS,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            labels={"sbx.bench": "raw"},
        )
        container.start()
        create_start.append(time.perf_counter() - started)
        if len(execs) < EXECS:
            for _ in range(EXECS // SANDBOXES + 1):
                t0 = time.perf_counter()
                exec_id = client.api.exec_create(container.id, ["true"])["Id"]
                client.api.exec_start(exec_id)
                client.api.exec_inspect(exec_id)
                execs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        container.remove(force=True)
        remove.append(time.perf_counter() - t0)
    return {"create": create_start, "destroy": remove, "exec": execs}


async def platform_run(plat: Platform) -> dict[str, list[float] | float]:
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

        create: list[float] = []
        destroy: list[float] = []
        execs: list[float] = []
        for i in range(SANDBOXES):
            t0 = time.perf_counter()
            response = await http.post("/sandboxes?wait=true&timeout=60", json={"environmentId": env_id})
            create.append(time.perf_counter() - t0)
            sandbox = response.json()["data"]
            assert sandbox["status"] == "running", sandbox
            if i == 0:
                for _ in range(EXECS):
                    t0 = time.perf_counter()
                    result = await http.post(f"/sandboxes/{sandbox['id']}/exec", json={"command": ["true"]})
                    execs.append(time.perf_counter() - t0)
                    assert result.json()["data"]["exitCode"] == 0, result.text
            t0 = time.perf_counter()
            response = await http.delete(f"/sandboxes/{sandbox['id']}?wait=true&timeout=60")
            destroy.append(time.perf_counter() - t0)
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
        return {"create": create, "destroy": destroy, "exec": execs, "throughput": throughput}


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def run() -> str:
    raw = raw_docker()
    extra = {
        "SBX_MAX_SANDBOXES_PER_USER": "1000",
        "SBX_MAX_CPU_PER_USER": "1000",
        "SBX_MAX_MEMORY_PER_USER": "1000000",
    }
    with running_platform(extra_env=extra) as plat:
        ours = asyncio.run(platform_run(plat))
    rows = []
    for key, label in (("create", "create to running"), ("destroy", "destroy"), ("exec", "exec round trip")):
        raw_values = raw[key]
        our_values = ours[key]
        assert isinstance(our_values, list)
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
    rate = ours["throughput"]
    out += f"\nCreates per second to running, {CONCURRENT_CLIENTS} concurrent clients: {rate:.2f}/s\n"
    return out


if __name__ == "__main__":
    print(run())
