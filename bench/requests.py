"""HTTP request throughput and latency of the API, against `GET /health/live` in the same run.

    uv run python -m bench requests        (or: uv run python -m bench.requests)

Starts embedded NATS and PostgreSQL and the API alone (no orchestrator: the sandbox read is a
row seeded as the API and the orchestrator would write it), signs a user up, then loads
`/health/live` (the baseline: no auth, no database), `/auth/me`, `/sandboxes/:id`, `/sandboxes`
and `/environments` with Debian's `wrk` (2 threads, 20 connections, BENCH_SECONDS each). Without
`wrk`, a Python load generator of the same shape is used (its own baseline: the ratios stay
comparable, the absolute figures are lower because the generator shares the 2 cores).

Two passes: the API with SBX_API_WORKERS=1 and =2. Then, with 2 workers, `/sandboxes/:id` at half
the rate it reached flat out, for its p99 at a steady load. The rate limits stay on (set high
enough not to refuse), so every authenticated request still counts against them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
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
from sbx_devstack.servers import EmbeddedPostgres

from bench.stack import percentile, table
from tests.support.api import create_environment, signup
from tests.support.nats_auth import admin_connect
from tests.support.nats_auth import nats_server as test_nats
from tests.support.platform import Platform, platform_env

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
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


def load(url: str, headers: dict[str, str], seconds: int = SECONDS) -> Result:
    if shutil.which("wrk"):
        return run_wrk(url, headers, seconds)
    return asyncio.run(_python_load(url, headers, seconds, 0.0))


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
def infrastructure() -> Iterator[tuple[dict[str, str], Path]]:
    with tempfile.TemporaryDirectory(prefix="sbx-bench-requests-") as tmp:
        root = Path(tmp)
        nats_server = test_nats(root / "nats").start()
        pg = EmbeddedPostgres(root / "pg").start()
        try:
            asyncio.run(_prepare(pg.url, nats_server.url))
            env = platform_env(pg.url, nats_server.url)
            # Counted, never refused: the benchmark measures the cost of the limits, not their effect.
            env["SBX_RATE_LIMIT_PER_MINUTE"] = "1000000000"
            yield env, root
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


def one_pass(plat: Platform) -> tuple[dict[str, Result], dict[str, str], str]:
    headers, sandbox_id = asyncio.run(_seed(plat))
    for path in ("/health/live", "/auth/me"):  # warm every worker's pool and imports
        load(plat.api_url + path, headers if path != "/health/live" else {}, 2)
    results = {
        label: load(plat.api_url + path, headers if authed else {})
        for label, path, authed in routes(sandbox_id)
    }
    return results, headers, sandbox_id


def run() -> str:
    generator = "wrk" if shutil.which("wrk") else "a Python load generator (wrk not installed)"
    passes: dict[int, dict[str, Result]] = {}
    paced_result: Result | None = None
    with infrastructure() as (env, root):
        for workers in (1, 2):
            with api(env, root, workers) as plat:
                passes[workers], headers, sandbox_id = one_pass(plat)
                if workers == 2:
                    half = passes[2]["GET /sandboxes/:id"].rps / 2
                    paced_result = paced(f"{plat.api_url}/sandboxes/{sandbox_id}", headers, half, root)
    out = []
    for workers, results in passes.items():
        base = results["GET /health/live"].rps
        rows = []
        for label, result in results.items():
            ratio = result.rps / base
            target = "baseline" if label.endswith("/health/live") else f">= {TARGET_RATIO}x"
            rows.append(
                [
                    label,
                    f"{result.rps:,.0f}",
                    f"{result.p50_ms:.1f}",
                    f"{result.p99_ms:.1f}",
                    f"{ratio:.2f}x",
                    target,
                    str(result.errors),
                ]
            )
        out.append(
            table(
                f"Requests, SBX_API_WORKERS={workers} ({generator}, {THREADS} threads, "
                f"{CONNECTIONS} connections, {SECONDS} s each)",
                ["route", "req/s", "p50 ms", "p99 ms", "vs /health/live", "target", "non-2xx"],
                rows,
            )
        )
    scaling = [
        [
            label,
            f"{passes[1][label].rps:,.0f}",
            f"{passes[2][label].rps:,.0f}",
            f"{passes[2][label].rps / passes[1][label].rps:.2f}x",
            f">= {TARGET_SCALING}x",
        ]
        for label in passes[1]
    ]
    out.append(
        table(
            "1 worker against 2", ["route", "1 worker req/s", "2 workers req/s", "ratio", "target"], scaling
        )
    )
    if paced_result is not None:
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
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
