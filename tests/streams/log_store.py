"""What the log shipper stored in PostgreSQL, and the check that its numbering has no gap."""

from __future__ import annotations

import uuid

import asyncpg


async def stored_lines(pg: asyncpg.Connection, sandbox_id: uuid.UUID | str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pg.fetch(
        "SELECT seq, stream, text, ts FROM sandbox_logs WHERE sandbox_id = $1 ORDER BY seq",
        uuid.UUID(str(sandbox_id)),
    )
    return rows


def assert_contiguous(seqs: list[int], first: int = 1) -> None:
    assert seqs == list(range(first, first + len(seqs))), "seq has a gap or a duplicate"
