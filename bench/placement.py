"""Placement's cost in a create: locking the candidate hosts and counting what is placed on them,
against the per-user quota step every create already runs (lock + count), same database, same run.

    uv run python -m bench.placement

PostgreSQL only (embedded): `HOSTS` hosts with `PER_HOST` running sandboxes each, spread over
`OWNERS` users. Each sample is one transaction, as in a create: the quota step (the owner's
advisory lock, `usage_of`), or placement's (every candidate host's advisory lock in host id order
in one statement, then the allocations query of `sbx_api.hosts.placement`: two round trips). The
ratio says what placement adds to the database part of a create, at that many hosts and sandboxes.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from sbx_api.hosts.placement import _ALLOCATIONS, HOST_LOCK_NAMESPACE, LOCK_HOSTS
from sbx_api.sandboxes.repository import lock_owner_quota, usage_of
from sbx_common import db
from sbx_devstack.servers import EmbeddedPostgres

from bench.stack import median, percentile, table
from tests.support.rows import insert_environment, insert_user

SAMPLES = 300
OWNERS = 50
SHAPES = [(2, 50), (10, 100), (50, 100)]  # (hosts, running sandboxes per host)


async def _seed(pg: asyncpg.Connection, hosts: int, per_host: int) -> list[uuid.UUID]:
    owners = [await insert_user(pg, "bench") for _ in range(OWNERS)]
    envs = [await insert_environment(pg, owner) for owner in owners]
    rows = []
    for h in range(hosts):
        for i in range(per_host):
            k = (h * per_host + i) % OWNERS
            sandbox_id, command_id = uuid.uuid4(), uuid.uuid4()
            rows.append((sandbox_id, owners[k], envs[k], command_id, f"h{h:03d}"))
    await pg.executemany(
        "INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, ttl_seconds,"
        " expires_at, last_command_id, last_command_verb, host_id)"
        " VALUES ($1, $2, $3, 1, 'bench', 3600, now() + interval '1 hour', $4, 'create', $5)",
        rows,
    )
    await pg.executemany(
        "INSERT INTO sandbox_runtime (sandbox_id, status, last_command_id) VALUES ($1, 'running', $2)",
        [(r[0], r[3]) for r in rows],
    )
    await pg.execute("ANALYZE")
    return owners


async def _time(pool: asyncpg.Pool, step: object) -> list[float]:
    samples = []
    for _ in range(SAMPLES):
        async with pool.acquire() as conn:
            t0 = time.perf_counter()
            async with conn.transaction():
                await step(conn)  # type: ignore[operator]
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def _shape(pg_url: str, hosts: int, per_host: int) -> list[str]:
    admin = await asyncpg.connect(pg_url)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        await db.migrate(dsn)
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                owners = await _seed(conn, hosts, per_host)
            host_ids = [f"h{h:03d}" for h in range(hosts)]
            turn = iter(range(10**9))

            async def quota(conn: asyncpg.Connection) -> None:
                owner = owners[next(turn) % OWNERS]
                await lock_owner_quota(conn, owner)
                await usage_of(conn, owner)

            async def placement(conn: asyncpg.Connection) -> None:
                await conn.fetchval(LOCK_HOSTS, HOST_LOCK_NAMESPACE, host_ids)
                await conn.fetch(_ALLOCATIONS, host_ids)

            base, placed = [], []
            for _ in range(2):  # alternate, so drift weighs on both
                base += await _time(pool, quota)
                placed += await _time(pool, placement)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    ratio = median(placed) / median(base)
    return [
        f"{hosts} hosts x {per_host}",
        f"{median(base):.2f} / {percentile(base, 95):.2f}",
        f"{median(placed):.2f} / {percentile(placed, 95):.2f}",
        f"{ratio:.2f}x",
    ]


async def _measure() -> list[list[str]]:
    with tempfile.TemporaryDirectory() as root:
        pg = EmbeddedPostgres(Path(root) / "pg").start()
        try:
            return [await _shape(pg.url, hosts, per_host) for hosts, per_host in SHAPES]
        finally:
            pg.stop()


def run() -> str:
    rows = asyncio.run(_measure())
    return table(
        "Placement's database step against the quota step (ms, median / p95)",
        ["running sandboxes", "quota step (baseline)", "placement step", "ratio"],
        rows,
    )


def main() -> None:
    print(run())


if __name__ == "__main__":
    main()
