"""Killing the log shipper, or restarting NATS, mid-stream loses no line and duplicates none.

These tests break things, so they run on a platform of their own (own NATS, PostgreSQL and
services), keeping every line (no retention pruning) so the whole sequence can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import docker
from sbx_common import natsconn

from tests.harness import wait_for
from tests.streams.conftest import DedicatedPlatform
from tests.streams.helpers import (
    DirectSandbox,
    assert_contiguous,
    publish_running,
    remove_container,
    start_labelled_container,
    stored_lines,
)

DEDICATED_SERVICES = ("log-shipper",)
DEDICATED_ENV = {"SBX_LOG_RETENTION_LINES": "1000000"}
LINES = 60_000
# Prints 1..LINES to stdout, one number per line, over a few seconds.
COUNTER = f"i=1; while [ $i -le {LINES} ]; do echo $i; i=$((i+1)); done; sleep 600"


async def _last_seq(pg: asyncpg.Connection, sandbox: DirectSandbox) -> int:
    value = await pg.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1", sandbox.sandbox_id)
    return int(value or 0)


async def _assert_every_line_once(pg: asyncpg.Connection, sandbox: DirectSandbox) -> None:
    async def complete() -> bool:
        return await _last_seq(pg, sandbox) >= LINES

    await wait_for(complete, timeout=90, interval=0.2)
    rows = await stored_lines(pg, sandbox.sandbox_id)
    assert_contiguous([r["seq"] for r in rows])
    assert len(rows) == LINES
    assert [r["text"] for r in rows] == [str(i) for i in range(1, LINES + 1)]


async def test_log_shipper_killed_mid_stream_resumes_without_gap_or_duplicate(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    nc = await natsconn.connect(plat.nats_url, "tests-streams")
    sandbox = start_labelled_container(COUNTER, instance=plat.instance)
    try:
        await publish_running(nc, sandbox)
        for threshold in (LINES // 6, LINES // 2):

            async def reached(threshold: int = threshold) -> bool:
                return await _last_seq(pg, sandbox) >= threshold

            await wait_for(reached, timeout=60, interval=0.02)
            plat.platform.kill_service("log-shipper")  # SIGKILL: no clean stop
            plat.platform.start_service("log-shipper")
        await _assert_every_line_once(pg, sandbox)
    finally:
        remove_container(sandbox)
        await nc.close()
        await pg.close()


async def test_nats_restarted_mid_stream_loses_and_duplicates_nothing(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    nc = await natsconn.connect(plat.nats_url, "tests-streams")
    sandbox = start_labelled_container(COUNTER, instance=plat.instance)
    later: DirectSandbox | None = None
    try:
        await publish_running(nc, sandbox)

        async def started() -> bool:
            return await _last_seq(pg, sandbox) >= LINES // 5

        await wait_for(started, timeout=60, interval=0.02)
        plat.nats.kill()
        await asyncio.sleep(1.5)
        plat.nats.start()
        await _assert_every_line_once(pg, sandbox)

        # The shipper's event consumer works again after the restart.
        later = start_labelled_container("echo after-restart; sleep 600", instance=plat.instance)

        async def followed() -> bool:
            with contextlib.suppress(Exception):
                await publish_running(nc, later)
            return [r["text"] for r in await stored_lines(pg, later.sandbox_id)] == ["after-restart"]

        await wait_for(followed, timeout=30, interval=1.0)
    finally:
        remove_container(sandbox)
        if later is not None:
            remove_container(later)
        await nc.close()
        await pg.close()


async def test_resume_skips_exactly_the_stored_lines_sharing_the_last_timestamp(
    dedicated_platform: DedicatedPlatform,
) -> None:
    """A 40,000-character line reaches Docker as pieces sharing one timestamp; after a restart
    the shipper asks Docker for the lines since that timestamp and must skip the stored pieces."""
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    nc = await natsconn.connect(plat.nats_url, "tests-streams")
    script = (
        "echo first; head -c 40000 /dev/zero | tr '\\000' x; echo;"
        " while [ ! -f /go ]; do sleep 0.1; done; echo after; sleep 600"
    )
    sandbox = start_labelled_container(script, instance=plat.instance)
    try:
        await publish_running(nc, sandbox)

        async def long_line_stored() -> list[asyncpg.Record] | None:
            rows = await stored_lines(pg, sandbox.sandbox_id)
            return rows if sum(len(r["text"]) for r in rows) >= 40005 else None

        before = await wait_for(long_line_stored, timeout=30)
        assert before[0]["text"] == "first"
        pieces = before[1:]
        assert len(pieces) >= 3
        assert "".join(r["text"] for r in pieces) == "x" * 40000
        assert all(len(r["text"].encode()) <= 16 * 1024 for r in pieces)
        assert len({r["ts"] for r in pieces}) == 1  # one timestamp for every piece

        plat.platform.kill_service("log-shipper")
        plat.platform.start_service("log-shipper")
        docker.from_env().containers.get(sandbox.container_id).exec_run(["touch", "/go"])

        async def after_stored() -> list[asyncpg.Record] | None:
            rows = await stored_lines(pg, sandbox.sandbox_id)
            return rows if rows[-1]["text"] == "after" else None

        await wait_for(after_stored, timeout=30)
        await asyncio.sleep(0.5)  # a duplicate, if any, would come with or right after "after"
        rows = await stored_lines(pg, sandbox.sandbox_id)
        assert [r["text"] for r in rows] == [r["text"] for r in before] + ["after"]
        assert_contiguous([r["seq"] for r in rows])
    finally:
        remove_container(sandbox)
        await nc.close()
        await pg.close()
