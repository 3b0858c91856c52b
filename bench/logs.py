"""Log shipping: lines per second stored, and write-to-WebSocket latency, beside `docker logs -f`.

    uv run python -m bench.logs

1. Throughput: a sandbox prints LINES numbered lines as fast as it can (`seq`). Measured from the
   moment it starts printing: until the log shipper has stored the last line in PostgreSQL, and
   until a `docker logs -f` reader on the same container has read it. Three runs: beside the
   `docker logs -f` CLI (read from its pipe in a thread, the real yardstick); beside the docker
   SDK's log stream read in a thread of this process (the reader of earlier runs of this
   benchmark); and beside the CLI with a logs WebSocket following too. Output this fast outruns
   every reader, so the latency of these runs is mostly the backlog; it is shown for scale.
2. Latency: sandboxes print at steady rates (bursts of 1, 10, 24 or 50 lines, each followed by a
   1 ms pause). A logs WebSocket (`tail=0&batch=true`, batch frames as the SDKs ask for them;
   one run again with the contract's one-line frames), a subscriber of the shipper's live feed
   `sbx.log.<id>` (the shipper's own latency, before the API) and `docker logs -f` follow each; a line's
   latency is the time it arrives minus Docker's timestamp of it (same host clock; the API's
   timestamps have millisecond precision). Zero loss: the socket must receive every printed line
   exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import docker
import httpx
import websockets
from nats.aio.msg import Msg
from sbx_common import subjects

from bench.stack import percentile, running_platform, table
from tests.support.docker import TEST_IMAGE
from tests.support.nats_auth import admin_connect
from tests.support.platform import Platform

LINES = 200_000
# (lines printed together before a 1 ms pause, lines in the run)
# A burst of 24 comes to about 10,000 lines/s here (each pause is ~2.4 ms with the loop's cost).
PACED_RUNS = ((1, 5_000), (10, 20_000), (24, 30_000), (50, 40_000))
PER_LINE_RUN = (24, 30_000)  # again with one-line frames (no `batch`), the contract's default
# (docker logs -f reader, a logs WebSocket following too)
THROUGHPUT_RUNS = (("cli", False), ("sdk", False), ("cli", True))
TARGET_STORED_RATIO = 0.9  # lines stored per second, against what `docker logs -f` reads
TARGET_P99_MS = 250  # write-to-WebSocket p99 ...
TARGET_P99_RATE = 10_500  # ... up to 10,000 lines/s (the 1 ms pauses make rates approximate)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _frame_lines(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines of a logs socket frame: a one-line frame, or a batch frame (`batch=true`)."""
    if frame["type"] == "log":
        return [frame]
    if frame["type"] == "logs":
        lines: list[dict[str, Any]] = frame["lines"]
        return lines
    return []


def _docker_ts(value: str) -> float:
    """Docker's RFC 3339 nano timestamp (or the API's millisecond one) as epoch seconds."""
    seconds, _, fraction = value.rstrip("Z").partition(".")
    base = datetime.fromisoformat(seconds + "+00:00").timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


class DockerFollower(threading.Thread):
    """`docker logs -f -t` (the CLI) on the container: counts the lines it prints, keeps each
    line's latency. Read in large blocks from its pipe, so the reader is not the bound. From
    the start of the log (the container prints nothing before it is told to go): `--tail 0`
    would miss the first lines if the CLI attached after they were printed."""

    def __init__(self, container_name: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.process = subprocess.Popen(
            ["docker", "logs", "--follow", "--timestamps", container_name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.expected = expected
        self.count = 0
        self.latencies: list[float] = []
        self.done_at: float | None = None

    def run(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        rest = b""
        try:
            while self.count < self.expected:
                block = os.read(fd, 1 << 20)
                if not block:
                    return
                now = time.time()
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                self.count += len(lines)
                self.latencies += [now - _docker_ts(line[: line.index(b" ")].decode()) for line in lines]
            self.done_at = time.monotonic()
        finally:
            self.process.kill()
            self.process.wait()


class SdkFollower(threading.Thread):
    """`docker logs -f` through the docker SDK, in a thread of this process: the reader earlier
    runs of this benchmark compared with (it parses each line in Python, so it is slower than
    the CLI, and it shares this process with the other readers)."""

    def __init__(self, container_name: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.container = docker.from_env().containers.get(container_name)
        self.expected = expected
        self.count = 0
        self.latencies: list[float] = []
        self.done_at: float | None = None

    def run(self) -> None:
        for raw in self.container.logs(stream=True, follow=True, timestamps=True):
            now = time.time()
            for line in raw.decode(errors="replace").splitlines():
                stamp, _, _text = line.partition(" ")
                self.count += 1
                self.latencies.append(now - _docker_ts(stamp))
            if self.count >= self.expected:
                self.done_at = time.monotonic()
                return


class NatsTap:
    """The log shipper's live feed itself (`sbx.log.<sandbox>`, core NATS): each line's latency
    from Docker's timestamp to its arrival here, before the API has touched it."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.seqs: list[int] = []

    async def on_batch(self, msg: Msg) -> None:
        now = time.time()
        for line in json.loads(msg.data)["lines"]:
            self.seqs.append(line["seq"])
            self.latencies.append(now - _docker_ts(line["timestamp"]))


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
                now = time.time()
                for line in _frame_lines(frame):
                    latencies.append(now - _docker_ts(line["timestamp"]))
                    seqs.append(line["seq"])
        except websockets.ConnectionClosed:
            pass
        done_at = time.monotonic()
    return {"latencies": latencies, "seqs": seqs, "done_at": done_at, "close_code": socket.close_code}


async def throughput(
    plat: Platform, http: httpx.AsyncClient, token: str, reader_kind: str, with_socket: bool
) -> dict[str, Any]:
    """Lines per second stored and read by `docker logs -f` (`reader_kind` "cli" or "sdk"); with
    a logs WebSocket following too when `with_socket` (that reader, the API's per-line frames,
    takes CPU from the others)."""
    sandbox = await _sandbox(http, WAIT_FOR_GO + f"seq 1 {LINES}; sleep 3600")
    follower_class = DockerFollower if reader_kind == "cli" else SdkFollower
    follower = follower_class(f"sbx-{sandbox['id']}", LINES)
    follower.start()
    url = f"{plat.ws_url}/ws/sandboxes/{sandbox['id']}/logs?token={token}&tail=0&batch=true"
    ready = asyncio.Event()
    reader = asyncio.create_task(_read_socket(url, LINES, ready)) if with_socket else None
    if reader is not None:
        await ready.wait()
    pg = await asyncpg.connect(plat.base_env["SBX_DATABASE_URL"])
    shipper = plat.processes["log-shipper"].process
    assert shipper is not None
    cpu_before = process_cpu_seconds(shipper.pid)
    engine = dockerd_pid()
    engine_before = process_cpu_seconds(engine) if engine else 0.0
    busy_before, total_before = machine_busy_seconds()
    try:
        started = await _go(http, sandbox)
        while True:
            stored = await pg.fetchval(
                "SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"]
            )
            if stored and stored >= LINES:
                stored_at = time.monotonic()
                shipper_cpu = process_cpu_seconds(shipper.pid) - cpu_before
                engine_cpu = process_cpu_seconds(engine) - engine_before if engine else float("nan")
                busy_after, total_after = machine_busy_seconds()
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(follower.join, 120)
        socket = await reader if reader is not None else None
        # The lines still stored (the newest, past retention) are the printed ones, each once.
        mismatched = await pg.fetchval(
            "SELECT count(*) FROM sandbox_logs WHERE sandbox_id = $1::uuid AND text <> seq::text",
            sandbox["id"],
        )
    finally:
        await pg.close()
    assert follower.done_at is not None, "docker logs -f did not see every line"
    if socket is None:
        socket = {"seqs": [], "done_at": float("nan"), "latencies": [], "close_code": None}
    return {
        "with_socket": with_socket,
        "reader": reader_kind,
        "stored": LINES / (stored_at - started),
        "shipper_us_per_line": shipper_cpu / LINES * 1e6,
        # Docker's engine (writing the log file, and serving both followers) per line, and how
        # busy the machine's cores were from the go to the last line stored.
        "dockerd_us_per_line": engine_cpu / LINES * 1e6,
        "machine_busy": (busy_after - busy_before) / max(total_after - total_before, 1e-9),
        "docker": LINES / (follower.done_at - started),
        "ws": len(socket["seqs"]) / (socket["done_at"] - started),
        "ws_latencies": socket["latencies"],
        "docker_latencies": follower.latencies,
        "ws_lossless": socket["seqs"] == list(range(1, LINES + 1)),
        "ws_close": socket["close_code"],
        "stored_exact": mismatched == 0,
    }


async def latency(
    plat: Platform,
    http: httpx.AsyncClient,
    token: str,
    burst: int,
    lines: int,
    *,
    with_socket: bool = True,
    batch: bool = True,
) -> dict[str, Any]:
    """`lines` lines, `burst` at a time with a 1 ms pause after each burst; without a logs
    WebSocket when not `with_socket` (the shipper's own latency, the API's socket path idle);
    with the contract's one-line frames when not `batch`."""
    script = (
        WAIT_FOR_GO
        + f"i=0; while [ $i -lt {lines // burst} ]; do seq $((i*{burst}+1)) $((i*{burst}+{burst}));"
        " usleep 1000; i=$((i+1)); done; sleep 3600"
    )
    sandbox = await _sandbox(http, script)
    follower = DockerFollower(f"sbx-{sandbox['id']}", lines)
    follower.start()
    url = f"{plat.ws_url}/ws/sandboxes/{sandbox['id']}/logs?token={token}&tail=0" + (
        "&batch=true" if batch else ""
    )
    latencies: list[float] = []
    seqs: list[int] = []
    texts: list[str] = []
    tap = NatsTap()
    nc = await admin_connect(plat.base_env["SBX_NATS_URL"], "bench-logs-tap")
    await nc.subscribe(subjects.log(uuid.UUID(sandbox["id"])), cb=tap.on_batch)
    await nc.flush()
    if with_socket:
        async with websockets.connect(url, max_size=None) as socket:
            started = await _go(http, sandbox)
            while len(seqs) < lines:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 30))
                now = time.time()
                for line in _frame_lines(frame):
                    latencies.append(now - _docker_ts(line["timestamp"]))
                    seqs.append(line["seq"])
                    texts.append(line["text"])
            elapsed = time.monotonic() - started
    else:
        started = await _go(http, sandbox)
        deadline = started + 120
        while len(tap.seqs) < lines and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
    await nc.close()
    await asyncio.to_thread(follower.join, 60)
    if with_socket:
        lossless = seqs == list(range(1, lines + 1)) and texts == [str(i) for i in range(1, lines + 1)]
    else:
        lossless = tap.seqs == list(range(1, lines + 1))
    return {
        "ws": latencies,
        "nats": tap.latencies,
        "docker": follower.latencies,
        "rate": lines / elapsed,
        "lossless": lossless,
        "with_socket": with_socket,
        "batch": batch,
    }


def machine_busy_seconds() -> tuple[float, float]:
    """(CPU seconds spent busy, CPU seconds in all) over every core since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # without guest time, already counted in user
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def dockerd_pid() -> int | None:
    found = subprocess.run(["pidof", "dockerd"], check=False, capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


async def measure(plat: Platform) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=plat.api_url, timeout=120) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signup = await http.post("/auth/signup", json={"email": email, "password": "benchmark-password"})
        token = signup.json()["data"]["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        rates = [
            await throughput(plat, http, token, reader_kind, with_socket)
            for reader_kind, with_socket in THROUGHPUT_RUNS
        ]
        paced = [await latency(plat, http, token, burst, lines) for burst, lines in PACED_RUNS]
        paced.append(await latency(plat, http, token, *PER_LINE_RUN, batch=False))
        # The fastest paced run again without a WebSocket: the shipper's share alone.
        paced.append(await latency(plat, http, token, *PACED_RUNS[-1], with_socket=False))
        return rates, paced


def run() -> str:
    with running_platform(services=("orchestrator", "log-shipper", "api")) as plat:
        runs, paced = asyncio.run(measure(plat))

    def ms(values: list[float], pct: float) -> str:
        return f"{percentile(values, pct) * 1000:.1f} ms" if values else "-"

    rows = []
    for rates in runs:
        ratio = rates["stored"] / rates["docker"]
        verdict = "met" if ratio >= TARGET_STORED_RATIO else "not met"
        stored_note = (
            f"{ratio:.2f}x docker logs -f (target >= {TARGET_STORED_RATIO}x: {verdict});"
            f" shipper CPU {rates['shipper_us_per_line']:.1f} us/line, dockerd"
            f" {rates['dockerd_us_per_line']:.1f} us/line; cores busy {rates['machine_busy']:.0%}"
        )
        if not rates["stored_exact"]:
            stored_note += "; STORED TEXT DIFFERS"
        run_name = f"{rates['reader']}" + (", with a logs WebSocket" if rates["with_socket"] else "")
        rows.append(
            [run_name, "log shipper: stored in PostgreSQL", f"{rates['stored']:,.0f}", "", "", stored_note]
        )
        if rates["with_socket"]:
            ws_note = (
                "every line once, in order"
                if rates["ws_lossless"]
                else f"closed {rates['ws_close']} (too slow)"
            )
            rows.append(
                [
                    run_name,
                    "logs WebSocket (API), tail=0, batch frames",
                    f"{rates['ws']:,.0f}",
                    ms(rates["ws_latencies"], 50),
                    ms(rates["ws_latencies"], 99),
                    ws_note,
                ]
            )
        rows.append(
            [
                run_name,
                "docker logs -f (the CLI)" if rates["reader"] == "cli" else "docker logs -f (docker SDK)",
                f"{rates['docker']:,.0f}",
                ms(rates["docker_latencies"], 50),
                ms(rates["docker_latencies"], 99),
                "",
            ]
        )
    out = table(
        f"Log throughput ({LINES:,} lines printed as fast as possible, the readers of a run in that run)",
        ["run", "reader", "lines/s", "latency p50", "latency p99", "note"],
        rows,
    )

    rows = []
    for delays in paced:
        rate = f"{delays['rate']:,.0f} lines/s"
        if not delays["with_socket"]:
            rate += ", no WebSocket"
        elif not delays["batch"]:
            rate += ", one-line frames"
        p99 = percentile(delays["ws"], 99) * 1000
        target = f"<= {TARGET_P99_MS} ms: {'met' if p99 <= TARGET_P99_MS else 'not met'}"
        if delays["rate"] > TARGET_P99_RATE:
            target = f"(above {TARGET_P99_RATE:,} lines/s: none)"
        readers: list[tuple[str, list[float]]] = [
            ("logs WebSocket (API)", delays["ws"]),
            ("live feed sbx.log.<id> (log shipper)", delays["nats"]),
            ("docker logs -f", delays["docker"]),
        ]
        if not delays["with_socket"]:
            readers = readers[1:]
        for reader, values in readers:
            note = target if reader.startswith("logs") else ""
            rows.append([rate, reader, ms(values, 50), ms(values, 99), ms(values, 100), note])
    out += "\n" + table(
        "Write-to-reader latency, paced output (5,000 to 40,000 lines per run; batch frames unless noted)",
        ["rate", "reader", "p50", "p99", "max", "target (p99)"],
        rows,
    )
    lossless = all(delays["lossless"] for delays in paced)
    verdict = "yes" if lossless else "NO"
    out += f"\nPaced runs: every line exactly once, in order (the WebSocket, else the live feed): {verdict}\n"
    return out


if __name__ == "__main__":
    print(run())
