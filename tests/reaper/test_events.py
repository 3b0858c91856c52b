"""Events arm and disarm TTL timers between two sweeps (durable consumer `reaper__events`)."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from sbx_common import subjects
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status

from tests.support.platform import Platform, metric, start_process
from tests.support.rows import seed_sandbox
from tests.support.waiting import wait_for


@pytest.fixture
def slow_reaper(platform: Platform) -> Iterator[int]:
    """The only reaper for a while, with its next sweep an hour away: only events can arm its
    timers now. (Reapers share the durable consumer, so with several each event reaches one.)"""
    platform.stop_service("reaper")
    try:
        env = {**platform.base_env, "SBX_REAPER_SWEEP_INTERVAL_SECONDS": "3600"}
        proc, port = start_process("reaper", env, platform.log_dir / "reaper-slow.log")
        try:
            yield port
        finally:
            proc.stop()
    finally:
        platform.start_service("reaper")


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
