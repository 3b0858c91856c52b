"""Webhook delivery: event published -> receiver has it, beside a plain signed POST.

    uv run python -m bench.webhooks

A receiver on loopback records when each request arrives. SAMPLES times, alternately: a raw
baseline (the same signed POST made directly with httpx, the receiver's arrival time minus the
send time), and the platform (an event published on SBX_EVT as the orchestrator does, until the
webhooks service's POST arrives: consumer, delivery row, scheduler, decrypt, sign, POST). Then a
burst of BURST events, timed until the last delivery arrives.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from sbx_common import subjects
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status
from sbx_common.webhooks import signature

from bench.stack import median, percentile, running_platform, table
from tests.support.nats_auth import admin_connect
from tests.support.platform import Platform

SAMPLES = 200
BURST = 1000


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()

    def add(self, key: str) -> None:
        with self.cond:
            self.at.setdefault(key, time.perf_counter())
            self.cond.notify_all()

    def wait(self, key: str, timeout: float = 30) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.at, timeout):
                raise TimeoutError(key)
            return self.at[key]

    def wait_count(self, keys: set[str], timeout: float = 300) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: keys <= self.at.keys(), timeout):
                raise TimeoutError(len(keys - self.at.keys()))
            return max(self.at[k] for k in keys)


def start_receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrivals.add(json.loads(body)["sandboxId"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def measure(plat: Platform, url: str, arrivals: Arrivals) -> str:
    nats_url = plat.base_env["SBX_NATS_URL"]
    async with plat.client() as api:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        signed_up = await api.post("/auth/signup", json={"email": email, "password": "correct horse battery"})
        token = signed_up.json()["data"]["token"]
        owner = uuid.UUID(signed_up.json()["data"]["user"]["id"])
        created = await api.post(
            "/webhooks",
            json={"url": url, "events": ["sandbox.*"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        secret = created.json()["data"]["secret"]
    nc = await admin_connect(nats_url, "bench-webhooks")
    js = nc.jetstream()
    raw: list[float] = []
    platform: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(SAMPLES):
            key = str(uuid.uuid4())
            body = json.dumps({"id": "0", "type": "sandbox.running", "sandboxId": key}).encode()
            stamp = str(int(time.time()))
            started = time.perf_counter()
            await http.post(
                url,
                content=body,
                headers={"Sbx-Timestamp": stamp, "Sbx-Signature": signature(secret, stamp, body)},
            )
            raw.append(await asyncio.to_thread(arrivals.wait, key) - started)

            event = SandboxEvent(sandbox_id=uuid.uuid4(), owner_id=owner, status=Status.RUNNING)
            started = time.perf_counter()
            await js.publish(subjects.event(owner, event.sandbox_id, "running"), event.to_bytes())
            platform.append(await asyncio.to_thread(arrivals.wait, str(event.sandbox_id)) - started)
        burst = [
            SandboxEvent(sandbox_id=uuid.uuid4(), owner_id=owner, status=Status.STOPPED) for _ in range(BURST)
        ]
        started = time.perf_counter()
        for event in burst:
            await js.publish(subjects.event(owner, event.sandbox_id, "stopped"), event.to_bytes())
        last = await asyncio.to_thread(arrivals.wait_count, {str(e.sandbox_id) for e in burst})
    await nc.close()
    burst_seconds = last - started

    def row(name: str, values: list[float]) -> list[str]:
        return [
            name,
            f"{median(values) * 1000:.1f}",
            f"{percentile(values, 95) * 1000:.1f}",
            f"{percentile(values, 99) * 1000:.1f}",
        ]

    latency = table(
        f"Webhook delivery latency ({SAMPLES} samples each, alternating)",
        ["path", "p50 ms", "p95 ms", "p99 ms"],
        [
            row("raw signed POST (httpx -> receiver)", raw),
            row("platform (SBX_EVT -> webhooks -> receiver)", platform),
        ],
    )
    throughput = table(
        f"Webhook burst ({BURST} events, default concurrency 8)",
        ["events", "seconds until the last arrived", "deliveries/s"],
        [[str(BURST), f"{burst_seconds:.2f}", f"{BURST / burst_seconds:.0f}"]],
    )
    return latency + "\n" + throughput


def run() -> str:
    arrivals = Arrivals()
    server = start_receiver(arrivals)
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    env = {"SBX_WEBHOOK_ALLOW_PRIVATE": "true"}
    try:
        with running_platform(("webhooks", "api"), extra_env=env) as plat:
            return asyncio.run(measure(plat, url, arrivals))
    finally:
        server.shutdown()


if __name__ == "__main__":
    print(run())
