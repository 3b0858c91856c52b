"""What the log shipper stores, beyond the basics covered with the logs socket."""

from __future__ import annotations

import asyncpg

from tests.streams.log_store import assert_contiguous, stored_lines
from tests.support.api import User
from tests.support.sandboxes import Sandboxes
from tests.support.waiting import wait_for


async def test_log_file_rotation_neither_duplicates_nor_loses_lines(
    user: User, sandboxes: Sandboxes, pg: asyncpg.Connection
) -> None:
    """25,000 lines of 1 KB pass Docker's 20 MB log-file rotation while they are followed.
    Docker then sends part of the log a second time; the shipper drops the repeat."""
    total = 25_000
    script = (
        "L=$(head -c 1000 /dev/zero | tr '\\000' x);"
        f' i=1; while [ $i -le {total} ]; do echo "$i $L"; i=$((i+1)); done; sleep 600'
    )
    sandbox = await sandboxes.run(user, script)

    async def complete() -> bool:
        rows = await stored_lines(pg, sandbox["id"])
        return bool(rows) and rows[-1]["text"].startswith(f"{total} ")

    await wait_for(complete, timeout=90, interval=0.5)
    count = await pg.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"])
    assert count == total  # not one line more (a repeat) or less
    rows = await stored_lines(pg, sandbox["id"])
    assert_contiguous([r["seq"] for r in rows], first=rows[0]["seq"])
    assert [r["text"].split(" ")[0] for r in rows] == [str(i) for i in range(rows[0]["seq"], total + 1)]
