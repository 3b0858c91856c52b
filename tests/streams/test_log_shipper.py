"""What the log shipper stores, beyond the basics covered with the logs socket."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.streams.log_store import assert_contiguous, stored_lines
from tests.support.api import User
from tests.support.sandboxes import Sandboxes, exec_in
from tests.support.waiting import wait_for


async def test_log_file_rotation_neither_duplicates_nor_loses_lines(
    client: httpx.AsyncClient, user: User, sandboxes: Sandboxes, pg: asyncpg.Connection
) -> None:
    """25,000 lines of 1 KB pass Docker's 20 MB log-file rotation while they are followed.
    Docker then sends part of the log a second time; the shipper drops the repeat."""
    total = 25_000
    script = (
        "L=$(head -c 1000 /dev/zero | tr '\\000' x);"
        f' i=1; while [ $i -le {total} ]; do echo "$i $L"; i=$((i+1)); done; sleep 600'
    )
    sandbox = await sandboxes.run(user, script)

    async def last_seq() -> int:
        value = await pg.fetchval(
            "SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"]
        )
        return int(value or 0)

    async def complete() -> bool:
        return await last_seq() >= total

    # 25 MB to write, follow and store: minutes rather than seconds on a busy machine.
    await wait_for(complete, timeout=300, interval=0.5)
    # A line printed after all of them: once it is stored, so is any repeat Docker sent before it.
    marker = f"marker-{uuid.uuid4().hex}"
    await exec_in(client, user, sandbox["id"], f"echo {marker} > /proc/1/fd/1")

    async def marker_stored() -> bool:
        query = "SELECT count(*) FROM sandbox_logs WHERE sandbox_id = $1::uuid AND text = $2"
        return bool(await pg.fetchval(query, sandbox["id"], marker))

    await wait_for(marker_stored, timeout=60, interval=0.5)
    assert await last_seq() == total + 1  # not one line more (a repeat) or less
    rows = await stored_lines(pg, sandbox["id"])
    assert_contiguous([r["seq"] for r in rows], first=rows[0]["seq"])
    assert [r["text"].split(" ")[0] for r in rows] == [str(i) for i in range(rows[0]["seq"], total + 1)] + [
        marker
    ]
