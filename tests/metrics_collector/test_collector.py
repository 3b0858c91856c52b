"""The collector keeps the latest sample of every running sandbox in KV `sbx_metrics` and in
Prometheus, and stops as soon as the sandbox stops."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from pathlib import Path

import asyncpg
import docker
from docker.models.containers import Container
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue
from sbx_common import subjects
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status
from sbx_metrics_collector.cgroups import CgroupReader
from sbx_metrics_collector.dockerstats import DockerStatsReader

from tests.metrics_collector.conftest import CPU_LIMIT, MEMORY_LIMIT
from tests.metrics_collector.samples import exported, sample_of, wait_no_sample, wait_sample
from tests.support.platform import Platform, metric
from tests.support.rows import SeededSandbox
from tests.support.waiting import wait_for


async def test_running_sandbox_is_sampled_until_it_stops(
    platform: Platform, kv: KeyValue, running_sandbox: tuple[SeededSandbox, Container]
) -> None:
    sandbox, container = running_sandbox
    # Docker's event stream reports the start: no waiting for the next listing (every 10 s).
    first = await wait_sample(kv, sandbox.id, timeout=5)
    # A later sample measures CPU between two readings of a container busy at its limit.
    sample = await wait_sample(kv, sandbox.id, newer_than=first["timestamp"])

    assert sample["cpu"]["cores"] == CPU_LIMIT
    assert 30 <= sample["cpu"]["usagePercent"] <= 100
    assert sample["memory"]["limitBytes"] == MEMORY_LIMIT
    assert 0 < sample["memory"]["usageBytes"] < MEMORY_LIMIT
    assert sample["memory"]["usagePercent"] == round(100 * sample["memory"]["usageBytes"] / MEMORY_LIMIT, 2)
    assert sample["pids"] >= 1
    assert set(sample["network"]) == {"rxBytes", "txBytes", "rxPackets", "txPackets"}
    assert all(isinstance(v, int) and v >= 0 for v in sample["network"].values())
    assert set(sample["io"]) == {"readBytes", "writeBytes"}
    assert datetime.fromisoformat(sample["timestamp"].replace("Z", "+00:00")).tzinfo is not None

    series = await exported(platform, sandbox.id)
    assert series["sandbox_memory_limit_bytes"] == MEMORY_LIMIT
    assert series["sandbox_cpu_cores"] == CPU_LIMIT
    assert series["sandbox_pids"] >= 1
    assert "sandbox_network_receive_bytes_total" in series

    await asyncio.to_thread(container.kill)
    await wait_no_sample(kv, sandbox.id, timeout=6)
    assert await exported(platform, sandbox.id) == {}


async def test_events_stop_and_resume_sampling_at_once(
    platform: Platform, kv: KeyValue, nc: NatsClient, running_sandbox: tuple[SeededSandbox, Container]
) -> None:
    sandbox, _ = running_sandbox
    js = nc.jetstream()

    async def publish(status: Status) -> None:
        event = SandboxEvent(sandbox_id=sandbox.id, owner_id=sandbox.owner_id, status=status)
        await js.publish(subjects.event(sandbox.owner_id, sandbox.id, status.value), event.to_bytes())

    port = platform.ops_ports["metrics-collector"]

    async def rounds() -> int:
        return int(await metric(port, "collector_round_seconds_count") or 0)

    async def rounds_reach(target: int) -> bool:
        return await rounds() >= target

    await wait_sample(kv, sandbox.id)
    # The orchestrator says it is stopping: the key goes before the container is gone, at once
    # (no round ended meanwhile but the one under way), and stays gone over the next rounds
    # although Docker still lists the container as running. Rounds are counted, not waited
    # for by the clock, which a busy machine can use up before a round even ran.
    before = await rounds()
    await publish(Status.STOPPING)
    await wait_no_sample(kv, sandbox.id, timeout=15)
    assert await rounds() <= before + 1
    await wait_for(partial(rounds_reach, await rounds() + 2), timeout=30, what="two more rounds")
    assert await sample_of(kv, sandbox.id) is None
    # Running again: the first sample comes at once, not at the next round.
    before = await rounds()
    await publish(Status.RUNNING)
    await wait_sample(kv, sandbox.id, timeout=15)
    assert await rounds() <= before + 1


async def test_a_start_whose_running_event_was_missed_is_sampled_again(
    kv: KeyValue, nc: NatsClient, pg: asyncpg.Connection, running_sandbox: tuple[SeededSandbox, Container]
) -> None:
    """Stop then start, as the orchestrator does them, except that the `running` event never
    reaches the collector (core NATS: a reconnect at that moment loses it)."""
    sandbox, container = running_sandbox
    js = nc.jetstream()

    async def record(status: Status, *, publish: bool = True) -> None:
        await pg.execute(
            "UPDATE sandbox_runtime SET status = $2, updated_at = now() WHERE sandbox_id = $1",
            sandbox.id,
            status.value,
        )
        if publish:
            event = SandboxEvent(sandbox_id=sandbox.id, owner_id=sandbox.owner_id, status=status)
            await js.publish(subjects.event(sandbox.owner_id, sandbox.id, status.value), event.to_bytes())

    before = await wait_sample(kv, sandbox.id)
    await record(Status.STOPPING)
    await wait_no_sample(kv, sandbox.id, timeout=15)
    # Quickly, so that no listing (every 10 s) falls while the container is down.
    await asyncio.to_thread(container.stop, timeout=0)
    await record(Status.STOPPED)
    await asyncio.to_thread(container.start)
    await record(Status.RUNNING, publish=False)

    sample = await wait_sample(kv, sandbox.id, timeout=15, newer_than=before["timestamp"])
    assert sample["cpu"]["cores"] == CPU_LIMIT
    # And it goes on being sampled.
    await wait_sample(kv, sandbox.id, newer_than=sample["timestamp"])


async def test_docker_stats_fallback_reads_the_same_container_alike(
    running_sandbox: tuple[SeededSandbox, Container], docker_client: docker.DockerClient
) -> None:
    _, container = running_sandbox
    await asyncio.to_thread(container.reload)
    pid = container.attrs["State"]["Pid"]
    fast = CgroupReader(Path("/sys/fs/cgroup"), Path("/proc"), str(container.id), pid)
    try:
        from_files = fast.read()
        from_docker = await asyncio.to_thread(DockerStatsReader(docker_client, str(container.id)).read)
    finally:
        fast.close()
    assert from_docker.memory_limit == from_files.memory_limit == MEMORY_LIMIT
    assert from_docker.pids == from_files.pids >= 1
    assert from_docker.cpu_ns >= from_files.cpu_ns > 0
    assert from_docker.rx_bytes >= from_files.rx_bytes
