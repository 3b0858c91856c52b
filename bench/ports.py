"""The port proxy versus the sandbox's own address, in the same run.

    uv run python -m bench.ports

A sandbox of the busybox test image serves a 1 KiB file and an 8 MiB file with `httpd` on port
8080. `wrk` (2 threads, 20 connections) loads the 1 KiB file straight at the container's address
on the sandbox bridge (the raw baseline), then through `GET /sandboxes/:id/ports/8080/...` with a
Bearer JWT and with a preview cookie; the runs alternate, three rounds each, and the table gives
the median round. The 8 MiB file is then read 10 times each way by one client (throughput).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import uuid

import docker
import httpx

from bench.stack import median, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

ROUNDS = 3
SECONDS = 8
SERVE = (
    "mkdir -p /tmp/www && head -c 1024 /dev/zero | tr '\\0' a > /tmp/www/small"
    " && head -c 8388608 /dev/urandom > /tmp/www/large && exec httpd -f -p 8080 -h /tmp/www"
)
LARGE_READS = 10


def wrk(url: str, headers: dict[str, str]) -> tuple[float, float, int]:
    """Requests/s, p50 latency (s) and non-2xx answers of one wrk run."""
    args = ["wrk", "-t2", "-c20", f"-d{SECONDS}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    text = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    p50 = float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return rps, p50, int(errors[1]) if errors else 0


async def prepare(plat: Platform) -> tuple[str, dict[str, str], dict[str, str], str]:
    """The sandbox's direct address, the Bearer and cookie headers, and the proxy's base URL."""
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        bearer = {"Authorization": f"Bearer {signup.json()['data']['token']}"}
        env = await http.post(
            "/environments",
            json={
                "name": "bench-ports",
                "image": TEST_IMAGE,
                "cpu": 1,
                "memory": 128,
                "command": ["sh", "-c", SERVE],
            },
            headers=bearer,
        )
        sandbox = await http.post(
            "/sandboxes?wait=true&timeout=60",
            json={"environmentId": env.json()["data"]["id"]},
            headers=bearer,
        )
        sandbox_id = sandbox.json()["data"]["id"]
        proxy = f"{plat.api_url}/sandboxes/{sandbox_id}/ports/8080"
        deadline = time.monotonic() + 60
        while (answer := await http.get(f"{proxy}/small", headers=bearer)).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the sandbox's httpd did not answer: {answer.status_code} {answer.text[:200]}"
                )
            await asyncio.sleep(0.2)
        link = await http.post(f"/sandboxes/{sandbox_id}/ports/8080/preview-url", headers=bearer)
        first = await http.get(link.json()["data"]["url"])
        cookie = {"Cookie": first.headers["set-cookie"].split(";")[0]}
    client = docker.from_env()
    try:
        info = client.api.inspect_container(f"sbx-{sandbox_id}")
    finally:
        client.close()
    address = next(n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])
    return f"http://{address}:8080", bearer, cookie, proxy


def read_large(url: str, headers: dict[str, str]) -> float:
    """MiB/s of reading the 8 MiB file `LARGE_READS` times with one client."""
    with httpx.Client(timeout=60) as http:
        started = time.perf_counter()
        total = 0
        for _ in range(LARGE_READS):
            with http.stream("GET", f"{url}/large", headers=headers) as answer:
                for chunk in answer.iter_raw():
                    total += len(chunk)
        return total / (1024 * 1024) / (time.perf_counter() - started)


def run() -> str:
    if shutil.which("wrk") is None:
        return "bench.ports: not available (wrk is not installed: apt-get install wrk)\n"
    with running_platform(("orchestrator", "api"), {"SBX_PROXY_RATE_LIMIT_PER_MINUTE": "100000000"}) as plat:
        direct, bearer, cookie, proxy = asyncio.run(prepare(plat))
        runs: dict[str, list[tuple[float, float, int]]] = {"direct": [], "bearer": [], "cookie": []}
        for _ in range(ROUNDS):
            runs["direct"].append(wrk(f"{direct}/small", {}))
            runs["bearer"].append(wrk(f"{proxy}/small", bearer))
            runs["cookie"].append(wrk(f"{proxy}/small", cookie))
        large = {"direct": read_large(direct, {}), "bearer": read_large(proxy, bearer)}
    base_rps = median([r[0] for r in runs["direct"]])
    base_p50 = median([r[1] for r in runs["direct"]])
    rows = []
    for key, label in (
        ("direct", "raw: container address"),
        ("bearer", "proxy, Bearer JWT"),
        ("cookie", "proxy, preview cookie"),
    ):
        rps = median([r[0] for r in runs[key]])
        p50 = median([r[1] for r in runs[key]])
        errors = sum(r[2] for r in runs[key])
        rows.append(
            [
                label,
                f"{rps:,.0f}",
                f"{p50 * 1000:.2f} ms",
                f"{rps / base_rps:.2f}x",
                f"{(p50 - base_p50) * 1000:+.2f} ms",
                str(errors),
            ]
        )
    small = table(
        f"Port proxy: GET of 1 KiB (wrk -t2 -c20, {SECONDS} s, median of {ROUNDS} rounds)",
        ["path", "req/s", "p50", "req/s ratio", "p50 delta", "non-2xx"],
        rows,
    )
    big = table(
        f"Port proxy: GET of 8 MiB, one client, {LARGE_READS} reads",
        ["path", "MiB/s", "ratio"],
        [
            ["raw: container address", f"{large['direct']:.0f}", "1.00x"],
            ["proxy, Bearer JWT", f"{large['bearer']:.0f}", f"{large['bearer'] / large['direct']:.2f}x"],
        ],
    )
    return small + "\n" + big


if __name__ == "__main__":
    print(run())
