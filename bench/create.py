"""Creating sandboxes: cold and warm-pool creates through the API versus raw Docker, same run.

    uv run python -m bench.create

- cold create to running (`POST /sandboxes?wait=true`, environment without a pool) against a
  docker-SDK create+start of the same image and limits (target <= 1.1x), and against one that
  also has the platform's container settings (its bridge network, init, ulimits, log options,
  block I/O weight, IPv6 off): what Docker itself spends on those, apart from the platform. A
  cold create's container joins a ready network holder's namespace (docs/network-holders.md),
  so it is also set beside a raw create+start that joins a running container's namespace:
  Docker's own part of what the platform does;
- warm create to running (environment with `warmPool`, a ready container waiting before each
  sample) against the same raw baseline (target <= 0.2x);
- destroy (`DELETE ?wait=true`) against a raw remove (target <= 1.1x);
- 10 concurrent creators, cold: creates/s to running against 10 threads doing raw create+start
  (target >= 0.9x).

Raw and platform samples alternate, so a machine whose speed drifts weighs on both alike, and
each timed sample starts with the pools full (warm containers, network holders) and no holder
being removed, so a refill never runs during one.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import docker
import httpx
from sbx_common import labels
from sbx_orchestrator.engine.firewall import network_name

from bench.lifecycle import CPU, MEMORY_MIB, RAW_LIMITS, raw_create_start
from bench.stack import median, percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

SAMPLES = 20
POOL = 3
CONCURRENT = 10
PER_CREATOR = 3
COMMAND = ["sh", "-c", "exec sleep 3600"]
# The orchestrator's network holders kept ready: its default, or SBX_NETWORK_HOLDERS when set
# for the benchmark (it is passed on to the platform it starts).
HOLDERS = int(os.environ.get("SBX_NETWORK_HOLDERS", "4"))


def raw_like_platform(client: docker.DockerClient, network: str) -> tuple[float, str]:
    """A docker-SDK create + start with the limits and the container settings the platform
    gives a sandbox (engine/containers.py at its defaults), on the platform's own network."""
    api = client.api
    host = api.create_host_config(
        **RAW_LIMITS,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        network_mode=network,
        init=True,
        sysctls={"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"},
        ulimits=[
            docker.types.Ulimit(name="nofile", soft=4096, hard=8192),
            docker.types.Ulimit(name="nproc", soft=2048, hard=2048),
        ],
        log_config=docker.types.LogConfig(type="json-file", config={"max-size": "20m", "max-file": "3"}),
        blkio_weight=500,
    )
    started = time.perf_counter()
    created = api.create_container(
        TEST_IMAGE,
        command=COMMAND,
        name=f"sbx-bench-raw-{uuid.uuid4().hex[:8]}",
        host_config=host,
        labels={"sbx.bench": "raw"},
    )
    api.start(created["Id"])
    return time.perf_counter() - started, str(created["Id"])


async def _environment(http: httpx.AsyncClient, name: str, warm_pool: int) -> str:
    body = {"name": name, "image": TEST_IMAGE, "cpu": CPU, "memory": MEMORY_MIB, "command": COMMAND}
    response = await http.post("/environments", json={**body, "warmPool": warm_pool})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def _create(http: httpx.AsyncClient, env_id: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    response = await http.post("/sandboxes?wait=true&timeout=60", json={"environmentId": env_id})
    elapsed = time.perf_counter() - t0
    sandbox = response.json()["data"]
    assert sandbox["status"] == "running", sandbox
    return elapsed, str(sandbox["id"])


async def _destroy(http: httpx.AsyncClient, sandbox_id: str) -> float:
    t0 = time.perf_counter()
    response = await http.delete(f"/sandboxes/{sandbox_id}?wait=true&timeout=60")
    elapsed = time.perf_counter() - t0
    assert response.json()["data"]["status"] == "destroyed", response.text
    return elapsed


async def _pool_full(db: asyncpg.Connection, env_id: str) -> None:
    """Until the pool holds POOL ready containers (the refill is not what a warm sample times)."""
    while (
        await db.fetchval(
            "SELECT count(*) FROM warm_pool_slots WHERE environment_id = $1 AND ready", uuid.UUID(env_id)
        )
        < POOL
    ):
        await asyncio.sleep(0.05)


async def _pool_empty(db: asyncpg.Connection, client: docker.DockerClient, env_id: str) -> None:
    """Until the drained pool's rows and containers are gone (not timed against anything)."""
    slots = [
        r["id"]
        for r in await db.fetch("SELECT id FROM warm_pool_slots WHERE environment_id = $1", uuid.UUID(env_id))
    ]

    def containers_left() -> int:
        names = {f"/sbx-{slot}" for slot in slots}
        return sum(1 for c in client.api.containers(all=True) if set(c["Names"]) & names)

    while await db.fetchval(
        "SELECT count(*) FROM warm_pool_slots WHERE environment_id = $1", uuid.UUID(env_id)
    ) or await asyncio.to_thread(containers_left):
        await asyncio.sleep(0.05)


def raw_joining(client: docker.DockerClient) -> float:
    """A docker-SDK create+start with the same limits, of a container that joins the network
    namespace of one already running (untimed): what Docker alone takes for a create the
    platform serves with a network holder."""
    name = f"sbx-bench-ns-{uuid.uuid4().hex[:8]}"
    holder = client.containers.run(TEST_IMAGE, ["sleep", "3600"], detach=True, name=name)
    try:
        api = client.api
        host = api.create_host_config(**RAW_LIMITS, network_mode=f"container:{holder.id}")
        started = time.perf_counter()
        created = api.create_container(
            TEST_IMAGE, command=COMMAND, name=f"sbx-bench-join-{uuid.uuid4().hex[:8]}", host_config=host
        )
        api.start(created["Id"])
        elapsed = time.perf_counter() - started
        api.remove_container(created["Id"], force=True)
    finally:
        holder.remove(force=True)
    return elapsed


def _holders_settled(client: docker.DockerClient, instance: str) -> bool:
    """The orchestrator's network holders neither being made nor removed: as many as the
    sandboxes joining one, plus the ready ones (the refill is not what a sample times)."""
    holders = client.api.containers(all=True, filters={"label": f"{labels.HOLDER_INSTANCE}={instance}"})
    joined = {
        c["HostConfig"]["NetworkMode"].partition(":")[2]
        for c in client.api.containers(all=True, filters={"label": labels.instance_filter(instance)})
        if c.get("HostConfig", {}).get("NetworkMode", "").startswith("container:")
    }
    ready = [h for h in holders if h["Id"] not in joined]
    return len(ready) == HOLDERS and all(h["State"] == "running" for h in holders)


async def holders_quiet(client: docker.DockerClient, instance: str) -> None:
    """Until no network holder is being made or removed."""
    while not await asyncio.to_thread(_holders_settled, client, instance):
        await asyncio.sleep(0.05)


async def _quiet(db: asyncpg.Connection, warm_env: str, client: docker.DockerClient, instance: str) -> None:
    """Until no pool is being refilled (warm containers, network holders) or drained."""
    await _pool_full(db, warm_env)
    await holders_quiet(client, instance)


def _raw_throughput(client: docker.DockerClient, network: str | None = None) -> float:
    """Creates+starts per second with CONCURRENT threads, PER_CREATOR each: with the same limits,
    or (`network` given) with the platform's container settings on its network."""

    def one() -> str:
        if network is not None:
            return raw_like_platform(client, network)[1]
        return str(raw_create_start(client)[1].id)

    def creator() -> list[str]:
        return [one() for _ in range(PER_CREATOR)]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT) as threads:
        made = [c for batch in threads.map(lambda _: creator(), range(CONCURRENT)) for c in batch]
    rate = len(made) / (time.perf_counter() - t0)
    for container_id in made:
        client.api.remove_container(container_id, force=True)
    return rate


async def measure(plat: Platform) -> tuple[dict[str, list[float]], tuple[float, float], float]:
    client = docker.from_env()
    samples: dict[str, list[float]] = {
        "raw create": [],
        "raw like platform": [],
        "raw joining": [],
        "raw remove": [],
        "raw remove like platform": [],
        "cold": [],
        "warm": [],
        "destroy": [],
    }
    db = await asyncpg.connect(plat.base_env["SBX_DATABASE_URL"])
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
        cold_env = await _environment(http, "bench-cold", 0)
        warm_env = await _environment(http, "bench-warm", POOL)
        await _create(http, cold_env)  # the image and the network exist before anything is timed
        instance = plat.base_env["SBX_INSTANCE"]
        network = network_name(instance)
        for _ in range(SAMPLES):
            # A refill (a container or a network holder being made, or one being removed) never
            # runs during a timed sample.
            await _quiet(db, warm_env, client, instance)
            elapsed, container = await asyncio.to_thread(raw_create_start, client)
            samples["raw create"].append(elapsed)
            await _quiet(db, warm_env, client, instance)
            elapsed, cold_id = await _create(http, cold_env)
            samples["cold"].append(elapsed)
            await _quiet(db, warm_env, client, instance)
            samples["raw joining"].append(await asyncio.to_thread(raw_joining, client))
            await _quiet(db, warm_env, client, instance)
            elapsed, like = await asyncio.to_thread(raw_like_platform, client, network)
            samples["raw like platform"].append(elapsed)
            await _quiet(db, warm_env, client, instance)
            t0 = time.perf_counter()
            await asyncio.to_thread(client.api.remove_container, like, force=True)
            samples["raw remove like platform"].append(time.perf_counter() - t0)
            await _quiet(db, warm_env, client, instance)
            elapsed, warm_id = await _create(http, warm_env)
            samples["warm"].append(elapsed)
            await _quiet(db, warm_env, client, instance)
            t0 = time.perf_counter()
            await asyncio.to_thread(container.remove, force=True)
            samples["raw remove"].append(time.perf_counter() - t0)
            await _quiet(db, warm_env, client, instance)
            samples["destroy"].append(await _destroy(http, cold_id))
            await _destroy(http, warm_id)
        await http.put(f"/environments/{warm_env}", json={"warmPool": 0})
        await _pool_empty(db, client, warm_env)
        await holders_quiet(client, instance)  # the last destroys' holders removed, none made
        raw_rate = await asyncio.to_thread(_raw_throughput, client)
        like_rate = await asyncio.to_thread(_raw_throughput, client, network)
        await holders_quiet(client, instance)

        async def creator() -> list[str]:
            return [(await _create(http, cold_env))[1] for _ in range(PER_CREATOR)]

        t0 = time.perf_counter()
        batches = await asyncio.gather(*(creator() for _ in range(CONCURRENT)))
        our_rate = CONCURRENT * PER_CREATOR / (time.perf_counter() - t0)
        await asyncio.gather(*(_destroy(http, sid) for batch in batches for sid in batch))
    await db.close()
    client.close()
    return samples, (raw_rate, like_rate), our_rate


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def run() -> str:
    extra = {
        "SBX_NETWORK_HOLDERS": str(HOLDERS),
        "SBX_MAX_SANDBOXES_PER_USER": "1000",
        "SBX_MAX_CPU_PER_USER": "1000",
        "SBX_MAX_MEMORY_PER_USER": "1000000",
    }
    with running_platform(extra_env=extra) as plat:
        samples, (raw_rate, like_rate), our_rate = asyncio.run(measure(plat))
    rows = []
    for label, ours, raw, target in (
        ("cold create to running", "cold", "raw create", "<= 1.1x"),
        ("cold create, raw with the platform's container settings", "cold", "raw like platform", ""),
        ("Docker alone: platform's settings vs same limits", "raw like platform", "raw create", ""),
        ("cold create, raw joining a running container's network namespace", "cold", "raw joining", ""),
        ("warm-pool create to running", "warm", "raw create", "<= 0.2x"),
        ("destroy", "destroy", "raw remove", "<= 1.1x"),
        (
            "destroy, raw remove of a container with the platform's settings",
            "destroy",
            "raw remove like platform",
            "",
        ),
    ):
        rows.append(
            [
                label,
                ms(median(samples[raw])),
                ms(percentile(samples[raw], 95)),
                ms(median(samples[ours])),
                ms(percentile(samples[ours], 95)),
                f"{median(samples[ours]) / median(samples[raw]):.2f}x",
                target,
            ]
        )
    rows.append(
        [
            f"creates/s, {CONCURRENT} concurrent creators",
            f"{raw_rate:.2f}/s",
            "",
            f"{our_rate:.2f}/s",
            "",
            f"{our_rate / raw_rate:.2f}x",
            ">= 0.9x",
        ]
    )
    rows.append(
        [
            f"creates/s, {CONCURRENT} concurrent, raw with the platform's container settings",
            f"{like_rate:.2f}/s",
            "",
            f"{our_rate:.2f}/s",
            "",
            f"{our_rate / like_rate:.2f}x",
            "",
        ]
    )
    return table(
        f"Creating sandboxes ({SAMPLES} samples each; warm pool of {POOL})",
        ["operation", "raw p50", "raw p95", "platform p50", "platform p95", "ratio", "target"],
        rows,
    )


if __name__ == "__main__":
    print(run())
