"""Log shipping: lines per second stored, and write-to-WebSocket latency, beside `docker logs -f`.

    uv run python -m bench.logs

1. Throughput: a sandbox prints LINES numbered lines as fast as it can (`seq`). Measured from the
   moment it starts printing: until the log shipper has stored the last line in PostgreSQL, until
   a logs WebSocket has received it, and until a `docker logs -f` reader on the same container
   (docker SDK, in a thread) has read it. Output this fast outruns every reader, so the latency
   of this run is mostly the backlog; it is shown beside `docker logs -f`'s for scale.
2. Latency: sandboxes print at steady rates (bursts of 1, 10 or 50 lines, each followed by a
   1 ms pause). A logs WebSocket (`tail=0`) and a `docker logs -f` reader follow each; a line's
   latency is the time it arrives minus Docker's timestamp of it (same host clock; the API's
   timestamps have millisecond precision). Zero loss: the socket must receive every printed line
   exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import docker
import httpx
import websockets

from bench.stack import percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.platform import Platform

LINES = 200_000
# (lines printed together before a 1 ms pause, lines in the run)
PACED_RUNS = ((1, 5_000), (10, 20_000), (50, 40_000))


def _docker_ts(value: str) -> float:
    """Docker's RFC 3339 nano timestamp (or the API's millisecond one) as epoch seconds."""
    seconds, _, fraction = value.rstrip("Z").partition(".")
    base = datetime.fromisoformat(seconds + "+00:00").timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


class DockerFollower(threading.Thread):
    """`docker logs -f` through the docker SDK: counts lines, keeps per-line latency."""

    def __init__(self, container_name: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.container = docker.from_env().containers.get(container_name)
        self.expected = expected
        self.count = 0
        self.latencies: list[float] = []
        self.done_at: float | None = None

    def run(self) -> None:
        for raw in self.container.logs(stream=True, follow=True, timestamps=True, tail=0):
            now = time.time()
            for line in raw.decode(errors="replace").splitlines():
                stamp, _, _text = line.partition(" ")
                self.count += 1
                self.latencies.append(now - _docker_ts(stamp))
            if self.count >= self.expected:
                self.done_at = time.monotonic()
                return


async def _sandbox(http: httpx.AsyncClient, script: str) -> dict[str, Any]:
    env = await http.post(
        "/environments",
        json={"name": f"bench-{uuid.uuid4().hex[:6]}", "image": TEST_IMAGE, "command": ["sh", "-c", script]},
    )
    response = await http.post(
        "/sandboxes?wait=true&timeout=60", json={"environmentId": env.json()["data"]["id"]}
    )
    sandbox: dict[str, Any] = response.json()["data"]
    assert sandbox["status"] == "running", sandbox
    return sandbox


async def _go(http: httpx.AsyncClient, sandbox: dict[str, Any]) -> float:
    response = await http.post(f"/sandboxes/{sandbox['id']}/exec", json={"command": "touch /go"})
    assert response.status_code == 200, response.text
    return time.monotonic()


WAIT_FOR_GO = "while [ ! -f /go ]; do usleep 20000; done; "


async def _read_socket(url: str, expected: int, ready: asyncio.Event) -> dict[str, Any]:
    """Follow a logs socket until `expected` lines: latencies, and whether it was closed early."""
    latencies: list[float] = []
    seqs: list[int] = []
    async with websockets.connect(url, max_size=None) as socket:
        ready.set()
        try:
            while len(seqs) < expected:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if frame["type"] == "log":
                    latencies.append(time.time() - _docker_ts(frame["timestamp"]))
                    seqs.append(frame["seq"])
        except websockets.ConnectionClosed:
            pass
        done_at = time.monotonic()
    return {"latencies": latencies, "seqs": seqs, "done_at": done_at, "close_code": socket.close_code}


async def throughput(plat: Platform, http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    sandbox = await _sandbox(http, WAIT_FOR_GO + f"seq 1 {LINES}; sleep 3600")
    follower = DockerFollower(f"sbx-{sandbox['id']}", LINES)
    follower.start()
    url = f"{plat.ws_url}/ws/sandboxes/{sandbox['id']}/logs?token={token}&tail=0"
    ready = asyncio.Event()
    reader = asyncio.create_task(_read_socket(url, LINES, ready))
    await ready.wait()
    pg = await asyncpg.connect(plat.base_env["SBX_DATABASE_URL"])
    try:
        started = await _go(http, sandbox)
        while True:
            stored = await pg.fetchval(
                "SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"]
            )
            if stored and stored >= LINES:
                stored_at = time.monotonic()
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(follower.join, 120)
        socket = await reader
    finally:
        await pg.close()
    assert follower.done_at is not None, "docker logs -f did not see every line"
    return {
        "stored": LINES / (stored_at - started),
        "docker": LINES / (follower.done_at - started),
        "ws": len(socket["seqs"]) / (socket["done_at"] - started),
        "ws_latencies": socket["latencies"],
        "docker_latencies": follower.latencies,
        "ws_lossless": socket["seqs"] == list(range(1, LINES + 1)),
        "ws_close": socket["close_code"],
    }


async def latency(
    plat: Platform, http: httpx.AsyncClient, token: str, burst: int, lines: int
) -> dict[str, Any]:
    """`lines` lines, `burst` at a time with a 1 ms pause after each burst."""
    script = (
        WAIT_FOR_GO
        + f"i=0; while [ $i -lt {lines // burst} ]; do seq $((i*{burst}+1)) $((i*{burst}+{burst}));"
        " usleep 1000; i=$((i+1)); done; sleep 3600"
    )
    sandbox = await _sandbox(http, script)
    follower = DockerFollower(f"sbx-{sandbox['id']}", lines)
    follower.start()
    url = f"{plat.ws_url}/ws/sandboxes/{sandbox['id']}/logs?token={token}&tail=0"
    latencies: list[float] = []
    seqs: list[int] = []
    texts: list[str] = []
    async with websockets.connect(url, max_size=None) as socket:
        started = await _go(http, sandbox)
        while len(seqs) < lines:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if frame["type"] != "log":
                continue
            latencies.append(time.time() - _docker_ts(frame["timestamp"]))
            seqs.append(frame["seq"])
            texts.append(frame["text"])
        elapsed = time.monotonic() - started
    await asyncio.to_thread(follower.join, 60)
    lossless = seqs == list(range(1, lines + 1)) and texts == [str(i) for i in range(1, lines + 1)]
    return {
        "ws": latencies,
        "docker": follower.latencies,
        "rate": lines / elapsed,
        "lossless": lossless,
    }


async def measure(plat: Platform) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        token = signup.json()["data"]["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        rates = await throughput(plat, http, token)
        paced = [await latency(plat, http, token, burst, lines) for burst, lines in PACED_RUNS]
        return rates, paced


def run() -> str:
    with running_platform(services=("orchestrator", "log-shipper", "api")) as plat:
        rates, paced = asyncio.run(measure(plat))

    def ms(values: list[float], pct: float) -> str:
        return f"{percentile(values, pct) * 1000:.1f} ms" if values else "-"

    ws_note = (
        "every line once, in order" if rates["ws_lossless"] else f"closed {rates['ws_close']} (too slow)"
    )
    out = table(
        f"Log throughput ({LINES:,} lines printed as fast as possible, all readers in the same run)",
        ["reader", "lines/s", "latency p50", "latency p99", "note"],
        [
            ["log shipper: stored in PostgreSQL", f"{rates['stored']:,.0f}", "", "", ""],
            [
                "logs WebSocket (API), tail=0",
                f"{rates['ws']:,.0f}",
                ms(rates["ws_latencies"], 50),
                ms(rates["ws_latencies"], 99),
                ws_note,
            ],
            [
                "docker logs -f (docker SDK)",
                f"{rates['docker']:,.0f}",
                ms(rates["docker_latencies"], 50),
                ms(rates["docker_latencies"], 99),
                "",
            ],
        ],
    )

    rows = []
    for delays in paced:
        rate = f"{delays['rate']:,.0f} lines/s"
        for reader, values in (("logs WebSocket (API)", delays["ws"]), ("docker logs -f", delays["docker"])):
            rows.append([rate, reader, ms(values, 50), ms(values, 99), ms(values, 100)])
    out += "\n" + table(
        "Write-to-reader latency, paced output (5,000 to 40,000 lines per run)",
        ["rate", "reader", "p50", "p99", "max"],
        rows,
    )
    lossless = all(delays["lossless"] for delays in paced)
    verdict = "yes" if lossless else "NO"
    out += f"\nPaced runs: every line exactly once, in order, over the WebSocket: {verdict}\n"
    return out


if __name__ == "__main__":
    print(run())
