"""Killing the log shipper, or restarting NATS, mid-stream loses no line and duplicates none.

These tests break things, so they run on a platform of their own (own NATS, PostgreSQL,
orchestrator, log shipper and API), keeping every line (no retention pruning) so the whole
sequence can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from tests.streams.clients import LogReader
from tests.streams.log_store import assert_contiguous, stored_lines
from tests.support.api import User, signup
from tests.support.platform import DedicatedPlatform
from tests.support.sandboxes import exec_in, run_sandbox
from tests.support.sockets import ws_connect, ws_url
from tests.support.waiting import wait_for

DEDICATED_SERVICES = ("orchestrator", "log-shipper", "api")
# Every line kept while the sandbox lives; gone as soon as it is destroyed (checked at start-up).
DEDICATED_ENV = {"SBX_LOG_RETENTION_LINES": "1000000", "SBX_LOG_KEEP_DESTROYED_DAYS": "0"}
LINES = 60_000
# Prints 1..LINES to stdout, one number per line, over a few seconds.
COUNTER = f"i=1; while [ $i -le {LINES} ]; do echo $i; i=$((i+1)); done; sleep 600"
MARK = "mark-"  # how the marker lines printed by `_mark` begin


def _out_err(pairs: int) -> str:
    """`out i` on stdout and `err i` on stderr, alternately: Docker stamps the two streams in two
    goroutines, so now and then a line lands in its log file after a line stamped later."""
    return f'i=1; while [ $i -le {pairs} ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; sleep 600'


async def _mark(client: httpx.AsyncClient, user: User, sandbox: dict[str, Any]) -> str:
    """Print a line of its own on the sandbox's stdout (from an exec, after everything printed so
    far); its text. The shipper stores lines in the order of the log, so once it has stored this
    one, anything it was going to store before it (a duplicate too) is stored."""
    marker = f"{MARK}{uuid.uuid4().hex}"
    await exec_in(client, user, sandbox["id"], f"echo {marker} > /proc/1/fd/1")
    return marker


async def _stored(pg: asyncpg.Connection, sandbox: dict[str, Any], text: str) -> None:
    async def found() -> bool:
        count = await pg.fetchval(
            "SELECT count(*) FROM sandbox_logs WHERE sandbox_id = $1::uuid AND text = $2", sandbox["id"], text
        )
        return bool(count)

    await wait_for(found, timeout=60, interval=0.2, what=f"{text!r} stored")


async def _assert_exactly_printed(
    client: httpx.AsyncClient,
    user: User,
    pg: asyncpg.Connection,
    sandbox: dict[str, Any],
    pairs: int,
    *,
    marks: list[str],
) -> None:
    """The sandbox's stored lines are exactly the `pairs` it printed, and the marker lines
    (`marks`, then one more printed here, added to `marks`) after them."""

    async def complete() -> bool:
        return await _last_seq(pg, sandbox) >= 2 * pairs

    with contextlib.suppress(AssertionError):  # the comparisons below tell what went wrong
        await wait_for(complete, timeout=60, interval=0.2)
        marks.append(await _mark(client, user, sandbox))
        await _stored(pg, sandbox, marks[-1])
    rows = await stored_lines(pg, sandbox["id"])
    assert_contiguous([r["seq"] for r in rows])
    assert [r["text"] for r in rows if r["text"].startswith(MARK)] == marks
    lines = [r for r in rows if not r["text"].startswith(MARK)]
    assert len(lines) == 2 * pairs
    assert [r["text"] for r in lines if r["stream"] == "stdout"] == [f"out {i}" for i in range(1, pairs + 1)]
    assert [r["text"] for r in lines if r["stream"] == "stderr"] == [f"err {i}" for i in range(1, pairs + 1)]


async def _last_seq(pg: asyncpg.Connection, sandbox: dict[str, Any]) -> int:
    value = await pg.fetchval("SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"])
    return int(value or 0)


async def _assert_every_line_once(pg: asyncpg.Connection, sandbox: dict[str, Any]) -> None:
    async def complete() -> bool:
        return await _last_seq(pg, sandbox) >= LINES

    await wait_for(complete, timeout=300, interval=0.2)
    rows = await stored_lines(pg, sandbox["id"])
    assert_contiguous([r["seq"] for r in rows])
    assert [r["text"] for r in rows] == [str(i) for i in range(1, LINES + 1)]


async def _read_all(reader: LogReader) -> None:
    await reader.read_until(lambda r: len(r.lines) >= LINES, timeout=300)
    assert_contiguous(reader.seqs)
    assert reader.texts == [str(i) for i in range(1, LINES + 1)]


@contextlib.asynccontextmanager
async def _reading_all(reader: LogReader) -> AsyncIterator[asyncio.Task[None]]:
    """`_read_all` running while the block goes on: the client reads as the lines come (tens of
    MB do not wait in socket buffers, and its pings are answered), as a real follower does."""
    reading = asyncio.create_task(_read_all(reader))
    try:
        yield reading
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def test_log_shipper_killed_mid_stream_resumes_without_gap_or_duplicate(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, "sbx-test-busybox:latest", COUNTER)
        url = ws_url(plat.platform.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, since=0)
        async with ws_connect(url) as socket, _reading_all(LogReader(socket)) as reading:
            for threshold in (LINES // 6, LINES // 2):

                async def reached(threshold: int = threshold) -> bool:
                    return await _last_seq(pg, sandbox) >= threshold

                await wait_for(reached, timeout=60, interval=0.02)
                plat.platform.kill_service("log-shipper")  # SIGKILL: no clean stop
                plat.platform.start_service("log-shipper")
            await _assert_every_line_once(pg, sandbox)
            # A client following all along saw every line exactly once too.
            await reading
    await pg.close()


async def test_log_shipper_killed_while_stdout_and_stderr_interleave_stores_exactly_what_was_printed(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pairs = 20_000
    pg = await asyncpg.connect(plat.database_url)
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, "sbx-test-busybox:latest", _out_err(pairs))
        for threshold in (pairs // 4, pairs, 3 * pairs // 2):

            async def reached(threshold: int = threshold) -> bool:
                return await _last_seq(pg, sandbox) >= threshold

            await wait_for(reached, timeout=60, interval=0.02)
            plat.platform.kill_service("log-shipper")
            plat.platform.start_service("log-shipper")
        await _assert_exactly_printed(client, user, pg, sandbox, pairs, marks=[])
    await pg.close()


async def test_resume_after_a_line_stamped_earlier_than_the_last_stored_one(
    dedicated_platform: DedicatedPlatform,
) -> None:
    """The shipper dies right after storing a line that Docker's log file follows with a line
    stamped earlier (the other stream's): resuming must not lose that line.

    Where a SIGKILL falls cannot be chosen, so the database is put back into the state such a
    death leaves (lines and cursor end at that line, as one transaction writes them) while no
    shipper runs, and the shipper is started on it."""
    plat = dedicated_platform
    pairs = 5_000
    pg = await asyncpg.connect(plat.database_url)
    async with plat.client() as client:
        user = await signup(client)
        # Whether Docker stamps a line earlier than the one before it is chance (rarer on a busy
        # machine, where the container prints more slowly): another sandbox gets another chance.
        for _attempt in range(3):
            sandbox = await run_sandbox(client, user, "sbx-test-busybox:latest", _out_err(pairs))
            marks: list[str] = []
            await _assert_exactly_printed(client, user, pg, sandbox, pairs, marks=marks)
            rows = await stored_lines(pg, sandbox["id"])
            inversions = [k for k in range(len(rows) - 1) if rows[k + 1]["ts"] < rows[k]["ts"]]
            if inversions:
                break
        assert inversions, "Docker stamped every line in file order, in three sandboxes"
        last = rows[inversions[len(inversions) // 2]]

        plat.platform.kill_service("log-shipper")
        try:  # the module's later tests need a shipper, whatever happens here
            async with pg.transaction():
                await pg.execute(
                    "DELETE FROM sandbox_logs WHERE sandbox_id = $1::uuid AND seq > $2",
                    sandbox["id"],
                    last["seq"],
                )
                await pg.execute(
                    "UPDATE log_cursors SET last_seq = $2, last_ts = $3, last_ts_raw = NULL"
                    " WHERE sandbox_id = $1::uuid",
                    sandbox["id"],
                    last["seq"],
                    last["ts"],
                )
        finally:
            plat.platform.start_service("log-shipper")
        # The shipper stores again every line after `last`, the first marker among them.
        await _assert_exactly_printed(client, user, pg, sandbox, pairs, marks=marks)
    await pg.close()


async def test_nats_restarted_mid_stream_loses_and_duplicates_nothing(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, "sbx-test-busybox:latest", COUNTER)
        url = ws_url(plat.platform.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, since=0)
        async with ws_connect(url) as socket, _reading_all(LogReader(socket)) as reading:

            async def started() -> bool:
                return await _last_seq(pg, sandbox) >= LINES // 5

            await wait_for(started, timeout=60, interval=0.02)
            plat.nats.kill()
            await asyncio.sleep(1.5)  # NATS down for a while, not just a reconnect
            plat.nats.start()
            await _assert_every_line_once(pg, sandbox)
            await reading

        # Everything works again after the restart: a new sandbox's line is stored.
        later = await _run_when_ready(client, user, "echo after-restart; sleep 600")

        async def followed() -> bool:
            return [r["text"] for r in await stored_lines(pg, later["id"])] == ["after-restart"]

        await wait_for(followed, timeout=30)
    await pg.close()


async def _run_when_ready(client: httpx.AsyncClient, user: User, script: str) -> dict[str, Any]:
    """Create a sandbox once the services have reconnected to the restarted NATS."""
    for _ in range(30):
        try:
            return await run_sandbox(client, user, "sbx-test-busybox:latest", script)
        except AssertionError:
            await asyncio.sleep(1)
    return await run_sandbox(client, user, "sbx-test-busybox:latest", script)


async def test_resume_skips_exactly_the_stored_lines_sharing_the_last_timestamp(
    dedicated_platform: DedicatedPlatform,
) -> None:
    """A 40,000-character line reaches Docker as pieces sharing one timestamp; after a restart
    the shipper asks Docker for the lines since that timestamp and must skip the stored pieces."""
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    script = (
        "echo first; head -c 40000 /dev/zero | tr '\\000' x; echo;"
        " while [ ! -f /go ]; do sleep 0.1; done; echo after; sleep 600"
    )
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, "sbx-test-busybox:latest", script)

        async def long_line_stored() -> list[asyncpg.Record] | None:
            rows = await stored_lines(pg, sandbox["id"])
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
        await exec_in(client, user, sandbox["id"], "touch /go")

        async def after_stored() -> bool:
            return (await stored_lines(pg, sandbox["id"]))[-1]["text"] == "after"

        await wait_for(after_stored, timeout=30)
        marker = await _mark(client, user, sandbox)  # a duplicate would be stored before it
        await _stored(pg, sandbox, marker)
        rows = await stored_lines(pg, sandbox["id"])
        assert [r["text"] for r in rows] == [r["text"] for r in before] + ["after", marker]
        assert_contiguous([r["seq"] for r in rows])
    await pg.close()


async def test_lines_of_destroyed_sandboxes_are_deleted_after_the_grace_period(
    dedicated_platform: DedicatedPlatform,
) -> None:
    plat = dedicated_platform
    pg = await asyncpg.connect(plat.database_url)
    async with plat.client() as client:
        user = await signup(client)
        gone = await run_sandbox(client, user, "sbx-test-busybox:latest", "echo bye; sleep 600")
        kept = await run_sandbox(client, user, "sbx-test-busybox:latest", "echo still-here; sleep 600")

        async def stored() -> bool:
            return bool(await stored_lines(pg, gone["id"])) and bool(await stored_lines(pg, kept["id"]))

        await wait_for(stored, timeout=30)
        response = await client.delete(f"/sandboxes/{gone['id']}?wait=true", headers=user.headers)
        assert response.json()["data"]["status"] == "destroyed"
        plat.platform.kill_service("log-shipper")
        plat.platform.start_service("log-shipper")  # deletes at start-up, then hourly

        async def deleted() -> bool:
            return not await stored_lines(pg, gone["id"])

        await wait_for(deleted, timeout=30)
        assert [r["text"] for r in await stored_lines(pg, kept["id"])] == ["still-here"]
        assert (
            await pg.fetchval("SELECT count(*) FROM log_cursors WHERE sandbox_id = $1::uuid", gone["id"]) == 0
        )
    await pg.close()
