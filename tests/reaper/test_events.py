"""Events arm and disarm TTL timers between two sweeps (durable consumer `reaper__events`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NatsClient
from sbx_common import subjects
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import free_port, wait_for_port

from tests.harness import Platform, wait_for
from tests.reaper.seed import seed_sandbox


@pytest.fixture
def slow_reaper(platform: Platform) -> Iterator[int]:
    """The only reaper for a while, with its next sweep an hour away: only events can arm its
    timers now. (Reapers share the durable consumer, so with several each event reaches one.)"""
    platform.stop_service("reaper")
    port = free_port()
    env = {**platform.base_env, "SBX_REAPER_SWEEP_INTERVAL_SECONDS": "3600", "SBX_METRICS_PORT": str(port)}
    proc = ServiceProcess("reaper", env, log_file=platform.log_dir / "reaper-slow.log").start()
    try:
        wait_for_port(port, timeout=30)
        yield port
    finally:
        proc.stop()
        platform.start_service("reaper")


async def metric(port: int, name: str) -> float | None:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


async def test_events_arm_and_cancel_ttl_timers(
    slow_reaper: int, pg: asyncpg.Connection, nc: NatsClient
) -> None:
    async def swept() -> bool:
        return (await metric(slow_reaper, "reaper_sweep_seconds_count") or 0) >= 1

    await wait_for(swept, timeout=15)  # its start-up sweep has armed what is due within the horizon
    before = await metric(slow_reaper, "reaper_ttl_timers")
    assert before is not None
    sandbox = await seed_sandbox(pg, runtime_status="running", expires_in=600)
    js = nc.jetstream()

    async def publish(status: Status) -> None:
        event = SandboxEvent(sandbox_id=sandbox.id, owner_id=sandbox.owner_id, status=status)
        await js.publish(subjects.event(sandbox.owner_id, sandbox.id, status.value), event.to_bytes())

    async def timers_are(value: float) -> bool:
        return await metric(slow_reaper, "reaper_ttl_timers") == value

    await publish(Status.RUNNING)
    await wait_for(lambda: timers_are(before + 1), timeout=10)
    await publish(Status.DESTROYED)
    await wait_for(lambda: timers_are(before), timeout=10)
    assert await metric(slow_reaper, 'jetstream_consumer_pending{consumer="reaper__events"}') is not None
