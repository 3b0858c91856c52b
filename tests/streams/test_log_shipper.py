"""The log shipper stores what containers print: every line, in order, per stream."""

from __future__ import annotations

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient
from sbx_common import natsconn

from tests.harness import Platform, wait_for
from tests.streams.helpers import (
    assert_contiguous,
    publish_running,
    remove_container,
    start_labelled_container,
    stored_lines,
)


@pytest.fixture
async def nc(platform: Platform, nats_url: str) -> NatsClient:
    client = await natsconn.connect(nats_url, "tests-streams")
    yield client
    await client.close()


async def test_lines_and_streams_match_what_the_container_printed(
    platform: Platform, nc: NatsClient, pg: asyncpg.Connection
) -> None:
    script = 'i=1; while [ $i -le 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; sleep 600'
    sandbox = start_labelled_container(script)
    try:
        await publish_running(nc, sandbox)

        async def all_stored() -> list[asyncpg.Record] | None:
            rows = await stored_lines(pg, sandbox.sandbox_id)
            return rows if len(rows) >= 600 else None

        rows = await wait_for(all_stored, timeout=30)
        assert len(rows) == 600
        assert_contiguous([r["seq"] for r in rows])
        assert [r["text"] for r in rows if r["stream"] == "stdout"] == [f"out {i}" for i in range(1, 301)]
        assert [r["text"] for r in rows if r["stream"] == "stderr"] == [f"err {i}" for i in range(1, 301)]
    finally:
        remove_container(sandbox)


async def test_binary_output_is_stored_safely(
    platform: Platform, nc: NatsClient, pg: asyncpg.Connection
) -> None:
    script = "printf 'a\\000b\\377c\\n'; printf '\\033[31mred\\033[0m\\n'; echo done; sleep 600"
    sandbox = start_labelled_container(script)
    try:
        await publish_running(nc, sandbox)

        async def stored() -> list[asyncpg.Record] | None:
            rows = await stored_lines(pg, sandbox.sandbox_id)
            return rows if len(rows) >= 3 else None

        rows = await wait_for(stored, timeout=30)
        assert [r["text"] for r in rows] == ["ab\ufffdc", "\x1b[31mred\x1b[0m", "done"]
    finally:
        remove_container(sandbox)
