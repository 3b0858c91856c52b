"""The log shipper's bounded storage: old lines are deleted beside the storing (not in its way),
and what is kept is still exactly the newest lines printed, a SIGKILL of the shipper included.

On a platform of its own, with a small retention, so that the deletions happen many times.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.streams.log_store import assert_contiguous, stored_lines
from tests.support.api import signup
from tests.support.platform import DedicatedPlatform
from tests.support.sandboxes import run_sandbox
from tests.support.waiting import wait_for

DEDICATED_SERVICES = ("orchestrator", "log-shipper", "api")
RETENTION = 1_000
SLACK = 100  # `LogStore.prune_slack` of this retention: deleted once this many more are stored
DEDICATED_ENV = {"SBX_LOG_RETENTION_LINES": str(RETENTION)}
LINES = 30_000
COUNTER = f"seq 1 {LINES}; sleep 600"


async def _last_seq(pg: asyncpg.Connection, sandbox: dict[str, Any]) -> int:
    value = await pg.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"])
    return int(value or 0)


async def test_kept_lines_stay_bounded_and_exact_across_a_shipper_sigkill(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    try:
        async with plat.client() as client:
            user = await signup(client)
            sandbox = await run_sandbox(client, user, "sbx-test-busybox:latest", COUNTER)

            async def a_third_stored() -> bool:
                return await _last_seq(pg, sandbox) >= LINES // 3

            await wait_for(a_third_stored, timeout=120, interval=0.02)
            plat.platform.kill_service("log-shipper")  # SIGKILL, a deletion perhaps under way
            plat.platform.start_service("log-shipper")

            async def all_stored() -> bool:
                return await _last_seq(pg, sandbox) >= LINES

            await wait_for(all_stored, timeout=300, interval=0.2)

            async def bounded() -> bool:
                count = await pg.fetchval(
                    "SELECT count(*) FROM sandbox_logs WHERE sandbox_id = $1::uuid", sandbox["id"]
                )
                return bool(count < RETENTION + SLACK)

            await wait_for(bounded, timeout=60, interval=0.2, what="old lines deleted")
            rows = await stored_lines(pg, sandbox["id"])
            assert len(rows) >= RETENTION
            seqs = [r["seq"] for r in rows]
            assert_contiguous(seqs, first=seqs[0])
            assert seqs[-1] == LINES == await _last_seq(pg, sandbox)
            assert [r["text"] for r in rows] == [str(seq) for seq in seqs]
    finally:
        await pg.close()
