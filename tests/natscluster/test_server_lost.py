"""Losing one NATS server of three, mid-run: no command, event, log line or process output lost.

The platform runs on a three-server cluster with every stream replicated three times. While a
sandbox prints numbered log lines, a background process prints numbered output and an events
subscription is open, the server the API is connected to, made the leader of the command,
event, log and process streams, is killed (SIGKILL), and the subscription is cut. Sandboxes are
created and stopped while it is down; everything must settle as asked, every number must come
back once, and the events the subscription saw (resumed from its last id each time it broke)
must be exactly the user's events in the stream. Then the server is started again and must
catch up on every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats.errors
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from sbx_common import subjects
from sbx_common.topology import STREAM_CMD, STREAM_EVT, STREAM_LOG, STREAM_PROC
from sbx_devstack.nats_cluster import EmbeddedNatsCluster

from tests.natscluster.conftest import ALL_STREAMS, REPLICAS, ClusterPlatform
from tests.streams.clients import SseEvent, sse_events
from tests.support.api import User, create_environment, signup
from tests.support.nats_auth import admin_connect
from tests.support.sandboxes import create_sandbox, get_sandbox, lifecycle_call
from tests.support.waiting import wait_for

# Numbered lines printed by the log sandbox and by the background process: enough to go on
# printing through the outage.
LINES = 1500
PRINT_LINES = "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo {prefix}-$i; sleep 0.01; done"
SETTLE_TIMEOUT = 180.0


async def stream_replicas(nats_url: str) -> dict[str, tuple[str | None, list[tuple[str, bool]]]]:
    """Each stream's leader and its other peers (name, current)."""
    nc = await admin_connect(nats_url, "tests-cluster-peers")
    try:
        js = nc.jetstream()
        found: dict[str, tuple[str | None, list[tuple[str, bool]]]] = {}
        for name in ALL_STREAMS:
            info = await js.stream_info(name)
            assert info.config.num_replicas == REPLICAS, name
            cluster = info.cluster
            assert cluster is not None, name
            peers = [(p.name or "", bool(p.current) and not p.offline) for p in cluster.replicas or []]
            found[name] = (cluster.leader, peers)
        return found
    finally:
        await nc.close()


async def every_peer_current(nats_url: str) -> bool:
    """Every stream has a leader and two current followers."""
    try:
        replicas = await stream_replicas(nats_url)
    except (TimeoutError, OSError, nats.errors.Error):  # a request during an election
        return False
    return all(
        leader is not None and len(peers) == REPLICAS - 1 and all(ok for _, ok in peers)
        for leader, peers in replicas.values()
    )


async def test_every_stream_and_bucket_is_replicated_on_three_servers(
    cluster_platform: ClusterPlatform,
) -> None:
    # Applied with one replica and then with three: the streams were raised in place.
    await wait_for(
        lambda: every_peer_current(cluster_platform.nats.url), timeout=60, what="every replica current"
    )


@dataclass
class EventReader:
    """The caller's `/events` followed for as long as the test runs; when the stream breaks
    (cut by `cut()`, or its API connection gone) it is opened again with `Last-Event-ID` of the
    last event seen, as any SSE client does."""

    client: httpx.AsyncClient
    user: User
    events: list[SseEvent] = field(default_factory=list)
    reopened: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    reading: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while True:
                self.reading = asyncio.create_task(self._read())
                # `wait`, not `await`: a cut (the reading task cancelled) must not end this loop.
                await asyncio.wait({self.reading})
                self.reopened += 1
                await asyncio.sleep(0.2)
        finally:
            self.cut()

    async def _read(self) -> None:
        headers = dict(self.user.headers)
        if self.events:
            headers["Last-Event-ID"] = str(self.events[-1].id)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            async with self.client.stream(
                "GET", "/events", headers=headers, timeout=httpx.Timeout(30, read=20)
            ) as response:
                if response.status_code == 200:
                    async for item in sse_events(response):
                        if item == "subscribed":
                            self.subscribed.set()
                        elif isinstance(item, SseEvent):
                            self.events.append(item)

    def cut(self) -> None:
        """Break the open stream, as a client's connection breaks."""
        if self.reading is not None:
            self.reading.cancel()

    def statuses(self, sandbox_id: str) -> list[str]:
        return [e.data["status"] for e in self.events if e.data["sandboxId"] == sandbox_id]


async def settled(client: httpx.AsyncClient, user: User, sandbox_id: str, status: str) -> None:
    async def there() -> bool:
        return bool((await get_sandbox(client, user, sandbox_id))["status"] == status)

    await wait_for(there, timeout=SETTLE_TIMEOUT, interval=0.5, what=f"{sandbox_id} {status}")


async def log_numbers(client: httpx.AsyncClient, user: User, sandbox_id: str) -> list[int]:
    response = await client.get(f"/sandboxes/{sandbox_id}/logs", params={"tail": 10000}, headers=user.headers)
    assert response.status_code == 200, response.text
    lines = response.json()["data"]
    seqs = [line["seq"] for line in lines]
    assert len(seqs) == len(set(seqs)), "a log seq came twice"
    return [int(m.group(1)) for line in lines if (m := re.fullmatch(r"line-(\d+)", line["text"].strip()))]


async def process_numbers(
    client: httpx.AsyncClient, user: User, sandbox_id: str, process_id: str
) -> list[int]:
    chunks: list[dict[str, Any]] = []
    since = 0
    while True:
        response = await client.get(
            f"/sandboxes/{sandbox_id}/processes/{process_id}/output",
            params={"since": since, "limit": 500},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        if not page["data"]:
            break
        chunks.extend(page["data"])
        since = page["nextSince"]
    seqs = [c["seq"] for c in chunks]
    assert len(seqs) == len(set(seqs)), "an output seq came twice"
    text = "".join(c["text"] for c in chunks if c["stream"] == "stdout")
    return [int(n) for n in re.findall(r"^p-(\d+)$", text, re.MULTILINE)]


def every_number_once(numbers: list[int]) -> bool:
    return bool(Counter(numbers) == Counter(range(1, LINES + 1)))


async def user_events_in_stream(nats_url: str, owner_id: str) -> list[int]:
    """The stream sequences of every event of `owner_id` in SBX_EVT: what the platform emitted."""
    nc = await admin_connect(nats_url, "tests-cluster-events")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            subjects.events_of_owner(owner_id),
            stream=STREAM_EVT,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[int] = []
        with contextlib.suppress(TimeoutError):
            while True:
                for msg in await sub.fetch(200, timeout=2):
                    found.append(msg.metadata.sequence.stream)
                    await msg.ack()
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def server_of(cluster: EmbeddedNatsCluster, client_name: str) -> int:
    """The index of the server `client_name` (e.g. `sbx-api`) is connected to."""
    for index in range(len(cluster.servers)):
        if client_name in cluster.client_names(index):
            return index
    raise AssertionError(f"{client_name} is connected to no server")


async def lead_from(nats_url: str, server: str, streams: list[str]) -> None:
    """Move the leadership of `streams` to `server` (stepping the leader down until the election
    lands there), so that killing that server takes the leaders with it."""
    nc = await admin_connect(nats_url, "tests-cluster-stepdown")
    try:
        js = nc.jetstream()
        for stream in streams:

            async def leads(stream: str = stream) -> bool:
                info = await js.stream_info(stream)
                if info.cluster is not None and info.cluster.leader == server:
                    return True
                request = json.dumps({"placement": {"preferred": server}}).encode()
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", request, timeout=5)
                return False

            await wait_for(leads, timeout=60, interval=1, what=f"{server} leads {stream}")
    finally:
        await nc.close()


@pytest.mark.timeout(900)
async def test_a_nats_server_killed_mid_run_loses_nothing_and_rejoins(
    cluster_platform: ClusterPlatform, cluster_client: httpx.AsyncClient, test_image: str
) -> None:
    client, cluster = cluster_client, cluster_platform.nats
    await wait_for(lambda: every_peer_current(cluster.url), timeout=60, what="every replica current")
    user = await signup(client)
    reader = EventReader(client, user)
    reading = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(reader.subscribed.wait(), 30)
        await _lose_a_server(client, cluster, user, reader, test_image)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def _lose_a_server(
    client: httpx.AsyncClient, cluster: EmbeddedNatsCluster, user: User, reader: EventReader, image: str
) -> None:
    idle = await create_environment(client, user, image, cpu=0.25, memory=64, command=["sleep", "3600"])
    printer = await create_environment(
        client,
        user,
        image,
        cpu=0.25,
        memory=64,
        command=["sh", "-c", PRINT_LINES.format(n=LINES, prefix="line") + "; sleep 3600"],
    )
    worker = await create_sandbox(client, user, idle["id"], "?wait=true&timeout=60")
    to_stop = [await create_sandbox(client, user, idle["id"], "?wait=true&timeout=60") for _ in range(2)]
    assert {s["status"] for s in [worker, *to_stop]} == {"running"}
    logger = await create_sandbox(client, user, printer["id"], "?wait=true&timeout=60")
    assert logger["status"] == "running"
    started = await client.post(
        f"/sandboxes/{worker['id']}/processes",
        json={"command": PRINT_LINES.format(n=LINES, prefix="p")},
        headers=user.headers,
    )
    assert started.status_code == 201, started.text
    process_id = started.json()["data"]["id"]

    # Mid-run: both printers under way, neither done.
    async def printing() -> bool:
        logged = await log_numbers(client, user, logger["id"])
        output = await process_numbers(client, user, worker["id"], process_id)
        return len(logged) >= 100 and len(output) >= 100

    await wait_for(printing, timeout=60, interval=0.2, what="both printers under way")
    # The server the API is connected to, leading the streams every check below reads.
    victim = server_of(cluster, "sbx-api")
    await lead_from(cluster.url, f"sbx-{victim + 1}", [STREAM_CMD, STREAM_EVT, STREAM_LOG, STREAM_PROC])
    cluster.servers[victim].kill()
    reader.cut()

    # While it is down: new sandboxes, and stops of running ones.
    # The API rides out the command stream's election (it tries again for up to
    # SBX_COMMAND_PUBLISH_TIMEOUT_SECONDS): every call is accepted, none answers 503.
    created = []
    for _ in range(3):
        response = await client.post("/sandboxes", json={"environmentId": idle["id"]}, headers=user.headers)
        assert response.status_code == 201, response.text
        created.append(response.json()["data"]["id"])
    for sandbox in to_stop:
        response = await lifecycle_call(client, user, sandbox["id"], "stop")
        assert response.status_code == 202, response.text
    await asyncio.gather(
        *(settled(client, user, s, "running") for s in created),
        *(settled(client, user, s["id"], "stopped") for s in to_stop),
    )

    # Every number once, in the logs and in the process's output.
    async def all_logged() -> bool:
        return every_number_once(await log_numbers(client, user, logger["id"]))

    async def all_output() -> bool:
        return every_number_once(await process_numbers(client, user, worker["id"], process_id))

    await wait_for(all_logged, timeout=SETTLE_TIMEOUT, interval=1, what="every log line once")
    await wait_for(all_output, timeout=SETTLE_TIMEOUT, interval=1, what="every output line once")

    # Every event the platform emitted for the user, seen once by the subscription.
    async def all_seen() -> bool:
        return {e.id for e in reader.events} >= {
            str(seq) for seq in await user_events_in_stream(cluster.url, user.id)
        } and all("running" in reader.statuses(s) for s in created)

    await wait_for(all_seen, timeout=60, interval=1, what="every event seen")
    stored = await user_events_in_stream(cluster.url, user.id)
    seen = [e.id for e in reader.events]
    assert reader.reopened >= 1, "the subscription was never resumed"
    assert len(seen) == len(set(seen)), "an event came twice"
    assert sorted(int(i) for i in seen if i is not None) == sorted(stored)
    for sandbox_id in created:
        assert reader.statuses(sandbox_id).count("running") == 1, reader.statuses(sandbox_id)
    for sandbox in to_stop:
        assert reader.statuses(sandbox["id"]).count("stopped") == 1, reader.statuses(sandbox["id"])

    # The server comes back on its ports and store, and catches up on every stream.
    await asyncio.to_thread(cluster.start_server, victim, 120)
    await wait_for(lambda: every_peer_current(cluster.url), timeout=120, what="every replica current")
    peers = {name for _, replicas in (await stream_replicas(cluster.url)).values() for name, _ in replicas}
    leaders = {leader for leader, _ in (await stream_replicas(cluster.url)).values()}
    assert f"sbx-{victim + 1}" in peers | leaders
