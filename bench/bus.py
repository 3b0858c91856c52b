"""Where the message bus and placement top out: JetStream publish+ack rates and KV puts on one
server beside a three-server cluster with three replicas, and a placement transaction under a
PostgreSQL advisory lock beside the same transaction without it. docs/scale-out.md, "Where it
tops out", turns these figures into limits.

    uv run python -m bench.bus

1. Commands: messages of a command's size (`SandboxCommand` JSON, about 300 bytes, with a
   `Nats-Msg-Id`) into a work-queue stream configured as `SBX_CMD` (file storage, 2 min
   duplicate window). One at a time (each publish waits for its ack: the API's case, one
   command per request) and pipelined (256 unacknowledged at most: many API workers at once).
   On one server (R1, the baseline) and on the cluster (R3: each message stored by two of the
   three servers before the ack), all on loopback.
2. Host heartbeats: KV puts of a 400-byte host record into a bucket (history 1) on keys of 1,000
   hosts, pipelined, R1 beside R3.
3. Placement: one transaction that takes a transaction-scoped advisory lock, picks the host with
   the most free CPU that fits, takes the room from it and records the placement; the baseline
   is the same transaction without the lock (row locks only). Sequential (latency) and from
   8 connections at once (throughput: the lock serialises them). PostgreSQL is the embedded
   one of the tests (fsync off, synchronous_commit off): a durable server adds its commit
   flush to every transaction.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from nats.aio.client import Client as NatsClient
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from sbx_devstack.nats_cluster import EmbeddedNatsCluster
from sbx_devstack.servers import EmbeddedPostgres

from bench.stack import percentile, table
from tests.support.nats_auth import admin_connect, authorization, nats_server

SEQUENTIAL = 2_000
PIPELINED = 20_000
IN_FLIGHT = 256
KV_PUTS = 20_000
HOSTS = 1_000
PLACEMENTS = 2_000
PLACERS = 8

COMMAND = json.dumps(
    {
        "v": 1,
        "id": str(uuid.uuid4()),
        "verb": "create",
        "sandboxId": str(uuid.uuid4()),
        "ownerId": str(uuid.uuid4()),
        "reason": "api",
        "requestedAt": "2026-12-02T10:00:00.000Z",
        "hostId": "host-0001",
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    }
).encode()
HOST_RECORD = json.dumps(
    {
        "hostId": "host-0001",
        "cpus": 64,
        "memoryMb": 262144,
        "allocatedCpus": 31.5,
        "allocatedMemoryMb": 120000,
        "sandboxes": 410,
        "runtimes": ["runc", "runsc"],
        "labels": {"zone": "a", "pool": "general"},
        "draining": False,
        "heartbeatAt": "2026-12-02T10:00:00.000Z",
        "version": "0.1.0",
        "padding": "x" * 80,
    }
).encode()


async def _commands(nc: NatsClient, replicas: int) -> dict[str, float]:
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
    name = f"BENCH_CMD_R{replicas}"
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=[f"bench.r{replicas}.cmd.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=120.0,
            num_replicas=replicas,
        )
    )
    subject = f"bench.r{replicas}.cmd.sandbox.create"
    try:
        latencies: list[float] = []
        start = time.perf_counter()
        for _ in range(SEQUENTIAL):
            began = time.perf_counter()
            await js.publish(subject, COMMAND, headers={"Nats-Msg-Id": uuid.uuid4().hex}, timeout=10)
            latencies.append((time.perf_counter() - began) * 1000)
        sequential_rate = SEQUENTIAL / (time.perf_counter() - start)
        start = time.perf_counter()
        futures = [
            await js.publish_async(subject, COMMAND, headers={"Nats-Msg-Id": uuid.uuid4().hex}, wait_stall=30)
            for _ in range(PIPELINED)
        ]
        await asyncio.gather(*futures)
        pipelined_rate = PIPELINED / (time.perf_counter() - start)
    finally:
        await js.delete_stream(name)
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "sequential": sequential_rate,
        "pipelined": pipelined_rate,
    }


async def _heartbeats(nc: NatsClient, replicas: int) -> float:
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
    bucket = f"bench_hosts_r{replicas}"
    await js.create_key_value(
        KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE, replicas=replicas)
    )
    try:
        start = time.perf_counter()
        futures = [
            await js.publish_async(f"$KV.{bucket}.host-{i % HOSTS:04d}", HOST_RECORD, wait_stall=30)
            for i in range(KV_PUTS)
        ]
        await asyncio.gather(*futures)
        return KV_PUTS / (time.perf_counter() - start)
    finally:
        await js.delete_key_value(bucket)


async def _bus(url: str, replicas: int) -> tuple[dict[str, float], float]:
    nc = await admin_connect(url, "bench-bus")
    try:
        return await _commands(nc, replicas), await _heartbeats(nc, replicas)
    finally:
        await nc.close()


PLACE = """
WITH chosen AS (
    SELECT id FROM bench_hosts
    WHERE NOT draining AND cpu_free >= $1 AND memory_free >= $2
    ORDER BY cpu_free DESC, id
    LIMIT 1
    FOR UPDATE
)
UPDATE bench_hosts h SET cpu_free = cpu_free - $1, memory_free = memory_free - $2
FROM chosen WHERE h.id = chosen.id
RETURNING h.id
"""


async def _placement_setup(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            DROP TABLE IF EXISTS bench_placements, bench_hosts;
            CREATE TABLE bench_hosts (
                id text PRIMARY KEY, cpu_free double precision NOT NULL,
                memory_free bigint NOT NULL, draining boolean NOT NULL DEFAULT false);
            CREATE INDEX ON bench_hosts (cpu_free DESC, id) WHERE NOT draining;
            CREATE TABLE bench_placements (
                sandbox_id uuid PRIMARY KEY, host_id text NOT NULL REFERENCES bench_hosts);
            """
        )
        await conn.executemany(
            "INSERT INTO bench_hosts VALUES ($1, $2, $3)",
            [(f"host-{i:04d}", 10_000.0, 10**9) for i in range(HOSTS)],
        )
    finally:
        await conn.close()


async def _place(conn: asyncpg.Connection, locked: bool) -> float:
    began = time.perf_counter()
    async with conn.transaction():
        if locked:
            await conn.execute("SELECT pg_advisory_xact_lock(7331)")
        host = await conn.fetchval(PLACE, 0.5, 128)
        await conn.execute("INSERT INTO bench_placements VALUES ($1, $2)", uuid.uuid4(), host)
    return (time.perf_counter() - began) * 1000


async def _placements(dsn: str, locked: bool) -> dict[str, float]:
    await _placement_setup(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        latencies = [await _place(conn, locked) for _ in range(PLACEMENTS)]
    finally:
        await conn.close()
    conns = [await asyncpg.connect(dsn) for _ in range(PLACERS)]
    concurrent: list[float] = []

    async def placer(conn: asyncpg.Connection) -> None:
        for _ in range(PLACEMENTS // PLACERS):
            concurrent.append(await _place(conn, locked))

    try:
        start = time.perf_counter()
        await asyncio.gather(*(placer(c) for c in conns))
        rate = PLACEMENTS / (time.perf_counter() - start)
    finally:
        for conn in conns:
            await conn.close()
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "sequential": PLACEMENTS / (sum(latencies) / 1000),
        "concurrent": rate,
        "concurrent_p99": percentile(concurrent, 99),
    }


def run() -> str:
    with tempfile.TemporaryDirectory(prefix="sbx-bench-bus-") as tmp:
        root = Path(tmp)
        single = nats_server(root / "single").start()
        try:
            r1 = asyncio.run(_bus(single.url, 1))
        finally:
            single.stop()
        cluster = EmbeddedNatsCluster(root / "cluster", 3, authorization()).start()
        try:
            r3 = asyncio.run(_bus(cluster.url, 3))
        finally:
            cluster.stop()
        pg = EmbeddedPostgres(root / "pg").start()
        try:
            plain = asyncio.run(_placements(pg.url, locked=False))
            locked = asyncio.run(_placements(pg.url, locked=True))
        finally:
            pg.stop()
    load = os.getloadavg()[0]
    (c1, k1), (c3, k3) = r1, r3
    rows = [
        [
            "publish+ack, one at a time",
            f"{c1['sequential']:,.0f}/s (p50 {c1['p50']:.2f} ms, p99 {c1['p99']:.2f} ms)",
            f"{c3['sequential']:,.0f}/s (p50 {c3['p50']:.2f} ms, p99 {c3['p99']:.2f} ms)",
            f"{c3['sequential'] / c1['sequential']:.2f}x",
        ],
        [
            f"publish+ack, {IN_FLIGHT} in flight",
            f"{c1['pipelined']:,.0f}/s",
            f"{c3['pipelined']:,.0f}/s",
            f"{c3['pipelined'] / c1['pipelined']:.2f}x",
        ],
        [f"KV put, {IN_FLIGHT} in flight", f"{k1:,.0f}/s", f"{k3:,.0f}/s", f"{k3 / k1:.2f}x"],
    ]
    bus = table(
        f"Message bus: one server (R1) beside a 3-server cluster (R3), loopback, load average {load:.1f}",
        ["what", "one server, R1 (baseline)", "cluster, R3", "R3 / R1"],
        rows,
    )
    placement = table(
        f"Placement transaction, {HOSTS} hosts, PostgreSQL (fsync off)",
        ["what", "row locks only (baseline)", "advisory lock", "locked / baseline"],
        [
            [
                "one placer: latency",
                f"p50 {plain['p50']:.2f} ms, p99 {plain['p99']:.2f} ms",
                f"p50 {locked['p50']:.2f} ms, p99 {locked['p99']:.2f} ms",
                f"{locked['p50'] / plain['p50']:.2f}x (p50)",
            ],
            [
                "one placer: placements/s",
                f"{plain['sequential']:,.0f}/s",
                f"{locked['sequential']:,.0f}/s",
                f"{locked['sequential'] / plain['sequential']:.2f}x",
            ],
            [
                f"{PLACERS} placers at once: placements/s (p99)",
                f"{plain['concurrent']:,.0f}/s ({plain['concurrent_p99']:.1f} ms)",
                f"{locked['concurrent']:,.0f}/s ({locked['concurrent_p99']:.1f} ms)",
                f"{locked['concurrent'] / plain['concurrent']:.2f}x",
            ],
        ],
    )
    return bus + "\n" + placement


if __name__ == "__main__":
    print(run())
