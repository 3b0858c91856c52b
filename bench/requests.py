"""HTTP request throughput and latency of the API, against `GET /health/live` in the same run.

    uv run python -m bench requests        (or: uv run python -m bench.requests)

Starts embedded NATS and PostgreSQL and the API alone (no orchestrator: the sandbox read is a
row seeded as the API and the orchestrator would write it), signs a user up, then loads
`/health/live` (the baseline: no auth, no database), `/auth/me`, `/sandboxes/:id`, `/sandboxes`
and `/environments` with Debian's `wrk` (2 threads, 20 connections). Without
`wrk`, a Python load generator of the same shape is used (its own baseline: the ratios stay
comparable, the absolute figures are lower because the generator shares the 2 cores).

Two APIs run side by side on the same database, one with SBX_API_WORKERS=1 and one with 2;
BENCH_ROUNDS rounds (3) alternate them, every route BENCH_SECONDS (5) each, and the figures are
medians over the rounds, ratios taken within each round (the machine is shared: its speed drifts
between rounds, much less within one). Then, with 2 workers, `/sandboxes/:id` at half the rate it
reached flat out, for its p99 at a steady load. The rate limits stay on (set high
enough not to refuse), so every authenticated request still counts against them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sbx_common import db, topology
from sbx_devstack.servers import EmbeddedPostgres, free_port

from bench.stack import percentile, table
from tests.support.api import create_environment, signup
from tests.support.nats_auth import admin_connect
from tests.support.nats_auth import nats_server as test_nats
from tests.support.platform import Platform, platform_env
from tests.support.processes import tree_cpu_seconds

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))  # per route per round
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
THREADS, CONNECTIONS = 2, 20
TARGET_RATIO = 0.7  # authenticated reads against /health/live
TARGET_P99_MS = 20.0  # /sandboxes/:id at half its flat-out rate
TARGET_SCALING = 1.7  # 2 workers against 1


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    api_cpu_us: float = 0.0  # CPU time of the API's processes per request
    db_cpu_us: float = 0.0  # CPU time of PostgreSQL's processes per request

    @property
    def cpu_us(self) -> float:
        return self.api_cpu_us + self.db_cpu_us


@dataclass(frozen=True)
class Target:
    """What a load is aimed at: the URL and the processes whose CPU it costs."""

    url: str
    api_pid: int
    db_pid: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s)", text)
    assert found, text
    return float(found.group(1)) * _UNITS[found.group(2)]


def run_wrk(url: str, headers: dict[str, str], seconds: int, script: Path | None = None) -> Result:
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(rps, p50, p99, int(bad.group(1)) if bad else 0)


async def _python_load(url: str, headers: dict[str, str], seconds: int, delay: float) -> Result:
    """The fallback generator: CONNECTIONS keep-alive clients in a loop, `delay` s between calls."""
    samples: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)

    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:

        async def one_connection() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await http.get(url)
                samples.append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors += 1
                if delay:
                    await asyncio.sleep(delay)

        started = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    ms = [s * 1000 for s in samples]
    return Result(len(samples) / elapsed, percentile(ms, 50), percentile(ms, 99), errors)


def load(target: Target, headers: dict[str, str], seconds: int = SECONDS) -> Result:
    """Flat out for `seconds`; with the API's and PostgreSQL's CPU time per request, which the
    other work on a shared machine does not change (their throughput, it does)."""
    api_before, db_before = tree_cpu_seconds(target.api_pid), tree_cpu_seconds(target.db_pid)
    if shutil.which("wrk"):
        result = run_wrk(target.url, headers, seconds)
    else:
        result = asyncio.run(_python_load(target.url, headers, seconds, 0.0))
    requests = max(1.0, result.rps * seconds)
    api_cpu = tree_cpu_seconds(target.api_pid) - api_before
    db_cpu = tree_cpu_seconds(target.db_pid) - db_before
    return dataclasses.replace(result, api_cpu_us=api_cpu / requests * 1e6, db_cpu_us=db_cpu / requests * 1e6)


def paced(url: str, headers: dict[str, str], rate: float, workdir: Path) -> Result:
    """About `rate` requests per second: each connection waits between its requests (wrk's Lua
    `delay()`), so latency is measured at a steady, not saturating, load."""
    gap_ms = max(0, int(CONNECTIONS / rate * 1000))
    if shutil.which("wrk"):
        script = workdir / "paced.lua"
        script.write_text(f"function delay()\n  return {gap_ms}\nend\n")
        return run_wrk(url, headers, SECONDS, script)
    return asyncio.run(_python_load(url, headers, SECONDS, gap_ms / 1000))


async def _prepare(database_url: str, nats_url: str) -> None:
    await db.migrate(database_url)
    nc = await admin_connect(nats_url, "bench-setup")
    await topology.apply_topology(nc.jetstream())
    await nc.close()


@contextmanager
def infrastructure() -> Iterator[tuple[dict[str, str], Path, int]]:
    with tempfile.TemporaryDirectory(prefix="sbx-bench-requests-") as tmp:
        root = Path(tmp)
        nats_server = test_nats(root / "nats").start()
        pg = EmbeddedPostgres(root / "pg").start()
        try:
            asyncio.run(_prepare(pg.url, nats_server.url))
            env = platform_env(pg.url, nats_server.url)
            # Counted, never refused: the benchmark measures the cost of the limits, not their effect.
            env["SBX_RATE_LIMIT_PER_MINUTE"] = "1000000000"
            assert pg.process is not None
            yield env, root, pg.process.pid
        finally:
            pg.stop()
            nats_server.stop()


@contextmanager
def api(env: dict[str, str], root: Path, workers: int) -> Iterator[Platform]:
    logs = root / f"logs-{workers}-{uuid.uuid4().hex[:6]}"
    logs.mkdir()
    plat = Platform(base_env={**env, "SBX_API_WORKERS": str(workers)}, log_dir=logs)
    plat.start_service("api")
    try:
        yield plat
    finally:
        plat.stop_all()


async def _seed(plat: Platform) -> tuple[dict[str, str], str]:
    """A signed-up user with an environment and one sandbox (row seeded): its headers and the
    sandbox id."""
    async with plat.client() as http:
        user = await signup(http)
        environment = await create_environment(http, user)
    conn = await asyncpg.connect(plat.base_env["SBX_DATABASE_URL"])
    try:
        sandbox_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, ttl_seconds,"
            " expires_at, last_command_id, last_command_verb, last_command_at)"
            " VALUES ($1, $2, $3, 1, 'bench', 3600, now() + interval '1 hour', $4, 'create', now())",
            sandbox_id,
            uuid.UUID(user.id),
            uuid.UUID(environment["id"]),
            uuid.uuid4(),
        )
        await conn.execute(
            "INSERT INTO sandbox_runtime (sandbox_id, status, last_command_id, updated_at)"
            " SELECT id, 'running', last_command_id, now() FROM sandboxes WHERE id = $1",
            sandbox_id,
        )
    finally:
        await conn.close()
    return user.headers, str(sandbox_id)


def routes(sandbox_id: str) -> list[tuple[str, str, bool]]:
    """(label, path, authenticated)."""
    return [
        ("GET /health/live", "/health/live", False),
        ("GET /auth/me", "/auth/me", True),
        ("GET /sandboxes/:id", f"/sandboxes/{sandbox_id}", True),
        ("GET /sandboxes", "/sandboxes", True),
        ("GET /environments", "/environments", True),
    ]


def target(plat: Platform, path: str, db_pid: int) -> Target:
    process = plat.processes["api"].process
    assert process is not None
    return Target(plat.api_url + path, process.pid, db_pid)


def measure(
    apis: dict[int, Platform], headers: dict[str, str], sandbox_id: str, db_pid: int
) -> dict[int, list[dict[str, Result]]]:
    """ROUNDS rounds; in each, every route on the 1-worker API, then on the 2-worker one. Ratios
    are taken within a round, so the machine's drift (other work on it) cancels out."""
    rounds: dict[int, list[dict[str, Result]]] = {workers: [] for workers in apis}
    for _ in range(ROUNDS):
        for workers, plat in apis.items():
            rounds[workers].append(
                {
                    label: load(target(plat, path, db_pid), headers if authed else {}, SECONDS)
                    for label, path, authed in routes(sandbox_id)
                }
            )
    return rounds


def _median(values: list[float]) -> float:
    return statistics.median(values)


def summary(rounds: list[dict[str, Result]]) -> dict[str, tuple[Result, float]]:
    """Per route: the median result over the rounds and the median of its per-round ratio to
    /health/live."""
    out = {}
    for label in rounds[0]:
        results = [r[label] for r in rounds]
        ratio = _median([r[label].rps / r["GET /health/live"].rps for r in rounds])
        median = Result(
            _median([x.rps for x in results]),
            _median([x.p50_ms for x in results]),
            _median([x.p99_ms for x in results]),
            sum(x.errors for x in results),
            _median([x.api_cpu_us for x in results]),
            _median([x.db_cpu_us for x in results]),
        )
        out[label] = (median, ratio)
    return out


@contextmanager
def floor_app(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`bench.floor_app` under uvicorn (one process, the API's loop and HTTP parser): its URL and
    pid, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "SBX_DATABASE_URL": env["SBX_DATABASE_URL"]},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/one-query", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the floor app did not start")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


FLOOR_ROUTES = (("GET /live", "/live"), ("GET /one-query", "/one-query"))


def measure_floor(env: dict[str, str], db_pid: int) -> list[dict[str, Result]]:
    """ROUNDS rounds of the bare app's two routes, each route SECONDS long."""
    with floor_app(env) as (url, pid):
        for _, path in FLOOR_ROUTES:  # its pool and caches warm
            load(Target(url + path, pid, db_pid), {}, 2)
        return [
            {label: load(Target(url + path, pid, db_pid), {}, SECONDS) for label, path in FLOOR_ROUTES}
            for _ in range(ROUNDS)
        ]


def run() -> str:
    generator = "wrk" if shutil.which("wrk") else "a Python load generator (wrk not installed)"
    load_before = os.getloadavg()
    with infrastructure() as (env, root, db_pid), api(env, root, 1) as one, api(env, root, 2) as two:
        headers, sandbox_id = asyncio.run(_seed(one))
        apis = {1: one, 2: two}
        for plat in apis.values():  # every worker's pool, prepared statements and caches warm
            for _, path, authed in routes(sandbox_id):
                load(target(plat, path, db_pid), headers if authed else {}, 2)
        rounds = measure(apis, headers, sandbox_id, db_pid)
        sums = {workers: summary(r) for workers, r in rounds.items()}
        half = sums[2]["GET /sandboxes/:id"][0].rps / 2
        paced_result = paced(f"{two.api_url}/sandboxes/{sandbox_id}", headers, half, root)
        floor_rounds = measure_floor(env, db_pid)
    out = [
        f"Load average of the machine (1, 5, 15 min) before: {load_before[0]:.1f} {load_before[1]:.1f} "
        f"{load_before[2]:.1f}; after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}. CPU per request is "
        "the API's processes (workers and supervisor) and PostgreSQL's over the run, divided by its "
        "requests: other work on the machine slows the routes down but does not change it.\n"
    ]
    for workers, routes_summary in sums.items():
        rows = []
        base_cpu = routes_summary["GET /health/live"][0].cpu_us
        for label, (result, ratio) in routes_summary.items():
            goal = "baseline" if label.endswith("/health/live") else f">= {TARGET_RATIO}x"
            rows.append(
                [
                    label,
                    f"{result.rps:,.0f}",
                    f"{result.p50_ms:.1f}",
                    f"{result.p99_ms:.1f}",
                    f"{ratio:.2f}x",
                    goal,
                    f"{result.api_cpu_us:,.0f} + {result.db_cpu_us:,.0f}",
                    f"{base_cpu / result.cpu_us:.2f}x" if result.cpu_us else "-",
                    str(result.errors),
                ]
            )
        out.append(
            table(
                f"Requests, SBX_API_WORKERS={workers} ({generator}, {THREADS} threads, {CONNECTIONS} "
                f"connections; medians of {ROUNDS} rounds of {SECONDS} s)",
                [
                    "route",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "req/s vs /health/live",
                    "target",
                    "CPU us/req (API + PostgreSQL)",
                    "CPU cost vs /health/live",
                    "non-2xx",
                ],
                rows,
            )
        )
    scaling = []
    for label in sums[1]:
        per_round = [b[label].rps / a[label].rps for a, b in zip(rounds[1], rounds[2], strict=True)]
        scaling.append(
            [
                label,
                f"{sums[1][label][0].rps:,.0f}",
                f"{sums[2][label][0].rps:,.0f}",
                f"{_median(per_round):.2f}x",
                f">= {TARGET_SCALING}x",
            ]
        )
    header = ["route", "1 worker req/s", "2 workers req/s", "ratio (median per round)", "target"]
    out.append(table("1 worker against 2 (both APIs up, rounds alternate)", header, scaling))
    out.append(
        table(
            "GET /sandboxes/:id at half its flat-out rate (2 workers)",
            ["req/s reached", "p50 ms", "p99 ms", "target p99"],
            [
                [
                    f"{paced_result.rps:,.0f}",
                    f"{paced_result.p50_ms:.1f}",
                    f"{paced_result.p99_ms:.1f}",
                    f"<= {TARGET_P99_MS:.0f} ms",
                ]
            ],
        )
    )
    floor_rows = []
    for label, _ in FLOOR_ROUTES:
        results = [r[label] for r in floor_rounds]
        ratio = _median([r[label].rps / r["GET /live"].rps for r in floor_rounds])
        floor_rows.append(
            [
                label,
                f"{_median([x.rps for x in results]):,.0f}",
                f"{_median([x.p99_ms for x in results]):.1f}",
                "baseline" if label == "GET /live" else f"{ratio:.2f}x",
                f"{_median([x.api_cpu_us for x in results]):,.0f}"
                f" + {_median([x.db_cpu_us for x in results]):,.0f}",
            ]
        )
    out.append(
        table(
            "The floor: a bare FastAPI app (bench/floor_app.py), one process, nothing of the platform's; "
            "its one-query route bounds any read that looks its caller up in PostgreSQL",
            ["route", "req/s", "p99 ms", "req/s vs its /live", "CPU us/req (app + PostgreSQL)"],
            floor_rows,
        )
    )
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
