"""Placement: which host a new sandbox runs on (docs/scale-out.md, "Hosts and placement").

A host can take a sandbox when its heartbeat is fresh, its engine answers, it is not draining
(`hosts.draining`, set by `sbx-admin`), its runtimes include the sandbox's, and the CPU and memory
limits of what is already placed there (sandboxes that are not destroyed or expired, and warm
pool slots) plus the new sandbox's stay within what it offers. `SBX_PLACEMENT` picks among those:
`spread` the least loaded, `pack` the most loaded that still has room.

One host (no host but `local` ever announced itself, as in `make run`): every sandbox goes to
`local` as before hosts existed, unless it is draining. Its command waits in the host's queue while
its orchestrator is down or restarting, and there is no choice to make, so neither freshness nor
capacity is checked (Docker's limits are ceilings that one host may overcommit; the per-user quotas
still bound what each user runs).

Concurrent creates never overfill a host: the candidates are locked (transaction-scoped advisory
locks, in host id order so two creates cannot deadlock) before their allocations are counted, and
stay locked until the create's insert commits. The orchestrators' warm pools take the same lock
before they reserve a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from sbx_common import runtimes, subjects
from sbx_common.errors import Unavailable
from sbx_common.hosts import HostHeartbeat

from sbx_api.state import AppState

# pg_advisory_xact_lock(namespace, hashtext(host id)): one lock per host (the orchestrator's
# warm pool uses the same key).
HOST_LOCK_NAMESPACE = 0x5B8_0003

# Every candidate's lock in one round trip, in host id order (two creates never deadlock).
LOCK_HOSTS = """
SELECT count(pg_advisory_xact_lock($1::int, hashtext(h)))
FROM (SELECT h FROM unnest($2::text[]) AS h ORDER BY h) AS ordered
"""

_ALLOCATIONS = """
SELECT host_id, sum(cpu) AS cpu, sum(memory_mib) AS memory FROM (
    SELECT v.host_id, ev.cpu, ev.memory_mib FROM sandbox_view v
    JOIN environment_versions ev
      ON ev.environment_id = v.environment_id AND ev.version = v.environment_version
    WHERE v.host_id = ANY($1::text[]) AND v.status NOT IN ('destroyed', 'expired')
    UNION ALL
    SELECT host_id, cpu, memory_mib FROM warm_pool_slots WHERE host_id = ANY($1::text[])
) a GROUP BY host_id
"""


@dataclass(frozen=True)
class Need:
    """What the new sandbox asks of its host."""

    cpu: float
    memory_mib: int
    runtime: str
    # The one host it must run on (its snapshot's image, its volumes are there), if any.
    host_id: str | None = None


async def draining(conn: asyncpg.Connection) -> set[str]:
    return {str(r["host_id"]) for r in await conn.fetch("SELECT host_id FROM hosts WHERE draining")}


def single_host(hosts: dict[str, HostHeartbeat]) -> bool:
    return set(hosts) <= {subjects.DEFAULT_HOST}


async def eligible(state: AppState, conn: asyncpg.Connection, runtime: str) -> list[str]:
    """Hosts that are up, not draining and offer `runtime` (room not checked)."""
    hosts = await state.hosts.hosts(state)
    out = await draining(conn)
    if single_host(hosts):
        return [] if subjects.DEFAULT_HOST in out else [subjects.DEFAULT_HOST]
    return [
        h.host_id
        for h in hosts.values()
        if h.fresh() and h.host_id not in out and (runtime or runtimes.DEFAULT) in h.runtimes and h.cpus > 0
    ]


async def place(state: AppState, conn: asyncpg.Connection, need: Need) -> str:
    """The host for the new sandbox, locked for the rest of the caller's transaction; 503
    `UNAVAILABLE` (nothing created) when none can take it."""
    hosts = await state.hosts.hosts(state)
    names = await eligible(state, conn, need.runtime)
    if need.host_id is not None:
        names = [name for name in names if name == need.host_id]
    if not names:
        raise _none_available(need, "no host that is up, not draining and offers the runtime")
    if single_host(hosts):
        return subjects.DEFAULT_HOST
    candidates = [hosts[name] for name in names]
    await conn.fetchval(LOCK_HOSTS, HOST_LOCK_NAMESPACE, [h.host_id for h in candidates])
    used = {
        r["host_id"]: (float(r["cpu"]), int(r["memory"]))
        for r in await conn.fetch(_ALLOCATIONS, [h.host_id for h in candidates])
    }
    fitting: list[tuple[float, str]] = []
    for host in candidates:
        cpu, memory = used.get(host.host_id, (0.0, 0))
        if cpu + need.cpu <= host.cpus + 1e-9 and memory + need.memory_mib <= host.memory_mib:
            # The larger of the two shares of what the host offers, after this sandbox.
            load = max((cpu + need.cpu) / host.cpus, (memory + need.memory_mib) / host.memory_mib)
            fitting.append((load, host.host_id))
    if not fitting:
        raise _none_available(need, "no host has room for the sandbox's CPU and memory")
    fitting.sort(reverse=state.settings.placement == "pack")
    return fitting[0][1]


def _none_available(need: Need, why: str) -> Unavailable:
    details: dict[str, object] = {
        "reason": "no host available",
        "cpu": need.cpu,
        "memoryMib": need.memory_mib,
        "runtime": need.runtime,
    }
    if need.host_id is not None:
        details["hostId"] = need.host_id
        why += f" (it must run on host {need.host_id}, where its snapshot or volumes are)"
    return Unavailable(f"No host can take this sandbox now: {why}; nothing was created.", details=details)
