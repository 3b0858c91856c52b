"""`sbx-admin`: the operator's commands (docs/scale-out.md, "Hosts and placement").

    sbx-admin hosts list          every host: heartbeat age, capacity, what is placed there,
                                  runtimes, labels, draining (JSON lines with --json)
    sbx-admin hosts drain ID      no new sandbox goes to host ID (those there keep running)
    sbx-admin hosts undrain ID    host ID takes new sandboxes again

It connects with the usual settings (`SBX_DATABASE_URL`, `SBX_NATS_URL`, and the NATS user
`sbx-admin`'s password in `SBX_NATS_PASSWORD`). The drain flag is the `hosts` table, which only
this tool writes; heartbeats are read from the KV bucket `sbx_hosts`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import asyncpg

from sbx_common import natsconn
from sbx_common.hosts import HostHeartbeat, read_hosts
from sbx_common.settings import CommonSettings

# What is placed on each host: sandboxes not destroyed or expired, and warm pool slots.
_PLACED = """
SELECT host_id, count(*) FILTER (WHERE sandbox) AS sandboxes, sum(cpu) AS cpu, sum(memory_mib) AS memory
FROM (
    SELECT v.host_id, true AS sandbox, ev.cpu, ev.memory_mib FROM sandbox_view v
    JOIN environment_versions ev
      ON ev.environment_id = v.environment_id AND ev.version = v.environment_version
    WHERE v.status NOT IN ('destroyed', 'expired')
    UNION ALL
    SELECT host_id, false, cpu, memory_mib FROM warm_pool_slots
) a GROUP BY host_id
"""


async def _hosts(settings: CommonSettings) -> dict[str, HostHeartbeat]:
    nc = await natsconn.connect_with(settings, "sbx-admin")
    try:
        return await read_hosts(nc.jetstream())
    finally:
        await nc.close()


async def list_hosts(settings: CommonSettings) -> list[dict[str, Any]]:
    heartbeats = await _hosts(settings)
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        placed = {r["host_id"]: r for r in await conn.fetch(_PLACED)}
        draining = {r["host_id"] for r in await conn.fetch("SELECT host_id FROM hosts WHERE draining")}
    finally:
        await conn.close()
    rows = []
    for host_id in sorted(set(heartbeats) | set(placed) | draining):
        beat = heartbeats.get(host_id)
        used = placed.get(host_id)
        rows.append(
            {
                "hostId": host_id,
                "heartbeatAgeSeconds": round(beat.age(), 1) if beat else None,
                "fresh": beat.fresh() if beat else False,
                "engineOk": beat.engine_ok if beat else False,
                "cpus": beat.cpus if beat else None,
                "memoryMib": beat.memory_mib if beat else None,
                "sandboxes": int(used["sandboxes"]) if used else 0,
                "cpuPlaced": float(used["cpu"]) if used else 0.0,
                "memoryMibPlaced": int(used["memory"]) if used else 0,
                # The same as the host counted it at its last heartbeat.
                "announced": (
                    {
                        "sandboxes": beat.sandboxes,
                        "cpus": beat.cpus_allocated,
                        "memoryMib": beat.memory_mib_allocated,
                    }
                    if beat
                    else None
                ),
                "runtimes": beat.runtimes if beat else [],
                "labels": beat.labels if beat else {},
                "draining": host_id in draining,
            }
        )
    return rows


async def set_draining(settings: CommonSettings, host_id: str, draining: bool) -> None:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute(
            "INSERT INTO hosts (host_id, draining) VALUES ($1, $2)"
            " ON CONFLICT (host_id) DO UPDATE SET draining = EXCLUDED.draining, updated_at = now()",
            host_id,
            draining,
        )
    finally:
        await conn.close()


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'HOST':<20} {'STATE':<10} {'AGE':>6} {'SANDBOXES':>9} {'CPU':>13} {'MEMORY MiB':>17}  RUNTIMES"
    lines = [head]
    for r in rows:
        state = "draining" if r["draining"] else ("up" if r["fresh"] else "down")
        age = "-" if r["heartbeatAgeSeconds"] is None else f"{r['heartbeatAgeSeconds']:.0f}s"
        cpu = f"{r['cpuPlaced']:g}/{r['cpus'] if r['cpus'] is not None else '?'}"
        memory = f"{r['memoryMibPlaced']}/{r['memoryMib'] if r['memoryMib'] is not None else '?'}"
        lines.append(
            f"{r['hostId']:<20} {state:<10} {age:>6} {r['sandboxes']:>9} {cpu:>13} {memory:>17}  "
            + ",".join(r["runtimes"])
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sbx-admin", description="Operate a sandbox platform installation.")
    groups = parser.add_subparsers(dest="group", required=True)
    hosts = groups.add_parser("hosts", help="the Docker hosts sandboxes are placed on")
    verbs = hosts.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="every host, its heartbeat and what is placed there")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for verb, text in (
        ("drain", "place no new sandbox on the host"),
        ("undrain", "place sandboxes there again"),
    ):
        verbs.add_parser(verb, help=text).add_argument("host_id", metavar="ID")
    args = parser.parse_args(argv)
    settings = CommonSettings()
    if args.verb == "list":
        rows = asyncio.run(list_hosts(settings))
        out = "\n".join(json.dumps(r) for r in rows) if args.json else _table(rows)
        sys.stdout.write(out + "\n")
        return
    asyncio.run(set_draining(settings, args.host_id, args.verb == "drain"))
    sys.stdout.write(f"host {args.host_id}: {'draining' if args.verb == 'drain' else 'taking sandboxes'}\n")


if __name__ == "__main__":
    main()
