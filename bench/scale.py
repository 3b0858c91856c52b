"""The platform's own cost with many idle sandboxes: CPU and memory of each service, API reads.

    uv run python -m bench.scale          # 300 sandboxes (SBX_BENCH_SCALE_SANDBOXES)
    uv run python -m bench.scale 50       # another count
    uv run python -m bench.scale 50 20    # and a 20 s idle window instead of 60 s

Starts the five services (orchestrator, log shipper, reaper, metrics collector, API) on a
throwaway NATS and PostgreSQL, then measures twice, with 1 running sandbox and with N:

- each service's CPU over an idle window (utime + stime, its waited-for children included, from
  /proc/<pid>/stat at both ends), as a share of one core, and its resident memory (VmRSS);
- the API's read latency after the window (at 1: before the N are created and again after they
  are destroyed, pooled), sequential, the kinds taking turns: `GET
  /sandboxes/:id` (a random sandbox), `GET /sandboxes?limit=1` (the list query over every
  sandbox, for an answer of one item either way) and `GET /sandboxes` (its first page of up to
  50, shown without a target: the answer itself grows with N).

The N sandboxes are idle busybox containers (`sleep`), created through the API in parallel
batches (`POST /sandboxes?wait=true`), and destroyed the same way at the end; the run checks that
no container of its installation is left. The Docker engine's own CPU (dockerd, containerd) over
each window is printed for scale: the engine runs other people's containers on a shared machine.

Targets: the five services together use at most 5% of one core at N; API read p99 at N within
1.5x of its figure at 1; memory per sandbox is stated ((RSS at N - RSS at 1) / (N - 1)).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import docker
import httpx
from sbx_common.labels import instance_filter

from bench.stack import percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

DEFAULT_SANDBOXES = 300
WINDOW_SECONDS = 60.0
# After the last create, before the window: followers, first samples and timers settle.
SETTLE_SECONDS = 10.0
BATCH = 10  # creates (and destroys) in flight at once
READS = 900  # API reads per measurement, a third of each kind
CPU = 0.05
MEMORY_MIB = 32
SERVICES = ("orchestrator", "log-shipper", "reaper", "metrics-collector", "api")
ENGINE = ("dockerd", "containerd")
TARGET_CPU_SHARE = 5.0  # percent of one core, the five services together
TARGET_READ_RATIO = 1.5
TICKS = os.sysconf("SC_CLK_TCK")

# Quotas and rate limits raised so one user can hold N sandboxes; the API's business gauges
# refreshed at their deployed default (the test platform's 0.5 s would be part of the idle cost).
ENV = {
    "SBX_METRICS_REFRESH_SECONDS": "15",
    "SBX_MAX_SANDBOXES_PER_USER": "100000",
    "SBX_MAX_CPU_PER_USER": "100000",
    "SBX_MAX_MEMORY_PER_USER": "100000000",
    "SBX_SANDBOX_CREATE_RATE_LIMIT": "100000",
    "SBX_RATE_LIMIT_PER_MINUTE": "1000000",
    "SBX_AUTH_RATE_LIMIT": "100000",
}


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def engine_pids() -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                if f.read().strip() in ENGINE:
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def service_pids(plat: Platform) -> dict[str, int]:
    pids = {}
    for name in SERVICES:
        process = plat.processes[name].process
        assert process is not None
        pids[name] = process.pid
    return pids


@dataclass
class Idle:
    sandboxes: int
    cpu_share: dict[str, float]  # percent of one core over the window
    rss: dict[str, int]
    engine_share: float
    reads: dict[str, list[float]]  # seconds, by READ_KINDS

    @property
    def total_share(self) -> float:
        return sum(self.cpu_share.values())

    @property
    def total_rss(self) -> int:
        return sum(self.rss.values())

    def target_reads(self) -> list[float]:
        return [t for kind in TARGET_KINDS for t in self.reads[kind]]


async def idle_window(plat: Platform, window: float) -> tuple[dict[str, float], float]:
    pids = service_pids(plat)
    engine = engine_pids()

    def engine_cpu() -> float:
        total = 0.0
        for pid in engine:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue
        return total

    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    engine_before, started = engine_cpu(), time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - started
    share = {name: 100.0 * (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}
    return share, 100.0 * (engine_cpu() - engine_before) / elapsed


# The reads measured: one sandbox, and the list's first item (the query that ranges over every
# sandbox of the user, for a response of the same size at 1 and at N). The list's first full page
# is shown too; it is larger at N (up to 50 sandboxes against 1), so it has no target.
READ_KINDS = ("GET /sandboxes/:id", "GET /sandboxes?limit=1", "GET /sandboxes (first page)")
TARGET_KINDS = READ_KINDS[:2]


async def read_latencies(http: httpx.AsyncClient, ids: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {kind: [] for kind in READ_KINDS}
    rng = random.Random(7)
    for i in range(READS):
        kind = READ_KINDS[i % len(READ_KINDS)]
        path = {
            READ_KINDS[0]: f"/sandboxes/{rng.choice(ids)}",
            READ_KINDS[1]: "/sandboxes?limit=1",
            READ_KINDS[2]: "/sandboxes",
        }[kind]
        started = time.perf_counter()
        response = await http.get(path)
        times[kind].append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return times


async def measure(plat: Platform, http: httpx.AsyncClient, ids: list[str], window: float) -> Idle:
    await asyncio.sleep(SETTLE_SECONDS)
    share, engine = await idle_window(plat, window)
    rss = {name: rss_bytes(pid) for name, pid in service_pids(plat).items()}
    return Idle(len(ids), share, rss, engine, await read_latencies(http, ids))


# Creates that ended `failed` (the engine refused them on a machine shared with others): the
# sandbox is destroyed and made again, at most this many times per run, and counted.
CREATE_RETRIES = 20
failed_creates: list[str] = []


async def create_many(http: httpx.AsyncClient, environment_id: str, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, BATCH):

        async def create() -> str:
            while True:
                response = await http.post(
                    "/sandboxes?wait=true&timeout=120", json={"environmentId": environment_id}
                )
                assert response.status_code in (200, 201), response.text
                data: dict[str, Any] = response.json()["data"]
                if data["status"] == "running":
                    return str(data["id"])
                failed_creates.append(f"{data['status']}: {data.get('statusReason')}")
                assert len(failed_creates) <= CREATE_RETRIES, failed_creates
                await destroy_many(http, [str(data["id"])])

        ids += await asyncio.gather(*(create() for _ in range(min(BATCH, count - start))))
    return ids


async def destroy_many(http: httpx.AsyncClient, ids: list[str]) -> None:
    for start in range(0, len(ids), BATCH):

        async def destroy(sandbox_id: str) -> None:
            response = await http.delete(f"/sandboxes/{sandbox_id}?wait=true&timeout=120")
            assert response.status_code in (200, 202), response.text

        await asyncio.gather(*(destroy(i) for i in ids[start : start + BATCH]))


def containers_left(instance: str) -> int:
    client = docker.from_env()
    try:
        return len(client.containers.list(all=True, filters={"label": instance_filter(instance)}))
    finally:
        client.close()


async def run_scale(plat: Platform, count: int, window: float) -> tuple[Idle, Idle, float, int]:
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=180) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        http.headers["Authorization"] = f"Bearer {signup.json()['data']['token']}"
        env = await http.post(
            "/environments",
            json={"name": "bench-scale", "image": TEST_IMAGE, "cpu": CPU, "memory": MEMORY_MIB},
        )
        environment_id = env.json()["data"]["id"]
        ids = await create_many(http, environment_id, 1)
        at_one = await measure(plat, http, ids, window)
        started = time.monotonic()
        ids += await create_many(http, environment_id, count - 1)
        create_seconds = time.monotonic() - started
        at_n = await measure(plat, http, ids, window)
        # Back to 1: its reads join the first ones, so a machine whose speed drifted while the
        # N sandboxes ran weighs on the baseline too.
        await destroy_many(http, ids[1:])
        await asyncio.sleep(SETTLE_SECONDS)
        for kind, times in (await read_latencies(http, ids[:1])).items():
            at_one.reads[kind] += times
        await destroy_many(http, ids[:1])
    return at_one, at_n, create_seconds, containers_left(plat.base_env["SBX_INSTANCE"])


def report(at_one: Idle, at_n: Idle, create_seconds: float, left: int, window: float) -> str:
    n = at_n.sandboxes
    mib = 1024 * 1024
    rows = [
        [
            name,
            f"{at_one.cpu_share[name]:.2f}%",
            f"{at_n.cpu_share[name]:.2f}%",
            f"{at_one.rss[name] / mib:.0f} MiB",
            f"{at_n.rss[name] / mib:.0f} MiB",
            f"{(at_n.rss[name] - at_one.rss[name]) / max(1, n - 1) / 1024:.0f} KiB",
        ]
        for name in SERVICES
    ]
    per_sandbox = (at_n.total_rss - at_one.total_rss) / max(1, n - 1)
    verdict = "met" if at_n.total_share <= TARGET_CPU_SHARE else "not met"
    rows.append(
        [
            "five services",
            f"{at_one.total_share:.2f}%",
            f"{at_n.total_share:.2f}% (target <= {TARGET_CPU_SHARE:.0f}%: {verdict})",
            f"{at_one.total_rss / mib:.0f} MiB",
            f"{at_n.total_rss / mib:.0f} MiB",
            f"{per_sandbox / 1024:.0f} KiB",
        ]
    )
    rows.append(
        [
            "Docker engine (dockerd, containerd)",
            f"{at_one.engine_share:.2f}%",
            f"{at_n.engine_share:.2f}%",
            "",
            "",
            "",
        ]
    )
    out = table(
        f"Idle cost, 1 vs {n} idle sandboxes ({window:.0f} s window, % of one core)",
        ["process", "CPU at 1", f"CPU at {n}", "RSS at 1", f"RSS at {n}", "RSS per extra sandbox"],
        rows,
    )
    read_rows = []
    kinds = [(kind, at_one.reads[kind], at_n.reads[kind]) for kind in READ_KINDS]
    kinds.append((" + ".join(TARGET_KINDS), at_one.target_reads(), at_n.target_reads()))
    for label, one, many in kinds:
        ratio = percentile(many, 99) / percentile(one, 99)
        target = ""
        if len(many) > READS // len(READ_KINDS):
            target = f"<= {TARGET_READ_RATIO}x: {'met' if ratio <= TARGET_READ_RATIO else 'not met'}"
        read_rows.append(
            [
                label,
                f"{percentile(one, 50) * 1000:.1f} / {percentile(one, 99) * 1000:.1f} ms",
                f"{percentile(many, 50) * 1000:.1f} / {percentile(many, 99) * 1000:.1f} ms",
                f"{ratio:.2f}x",
                target,
            ]
        )
    out += "\n" + table(
        f"API reads, p50 / p99, {READS // len(READ_KINDS)} of each at N"
        f" ({2 * READS // len(READ_KINDS)} at 1: before and after), sequential",
        ["read", "1 sandbox", f"{n} sandboxes", "p99 ratio", "target"],
        read_rows,
    )
    out += (
        f"\n{n - 1} sandboxes created in {create_seconds:.1f} s"
        f" ({(n - 1) / create_seconds:.1f}/s, {BATCH} at a time);"
        f" containers of the run left after destroying them all: {left}"
        f" ({'ok' if left == 0 else 'LEFT BEHIND'})\n"
    )
    if failed_creates:
        out += f"Creates that failed and were made again: {len(failed_creates)} ({failed_creates[0]})\n"
    return out


def run(count: int | None = None, window: float = WINDOW_SECONDS) -> str:
    count = count or int(os.environ.get("SBX_BENCH_SCALE_SANDBOXES", DEFAULT_SANDBOXES))
    with running_platform(services=SERVICES, extra_env=ENV) as plat:
        at_one, at_n, create_seconds, left = asyncio.run(run_scale(plat, count, window))
        # Why the engine refused a create, when it did (the first warning of the orchestrator).
        warnings = [line for line in plat.logs("orchestrator").splitlines() if "WARNING" in line]
    out = report(at_one, at_n, create_seconds, left, window)
    if failed_creates and warnings:
        out += f"First warning of the orchestrator: {warnings[0][:400]}\n"
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    print(run(int(args[0]) if args else None, float(args[1]) if len(args) > 1 else WINDOW_SECONDS))
