"""Fair use between users: per-user caps (429 QUOTA_EXCEEDED, close 4029), exec fairness in the
orchestrator, and responses and sockets bounded in memory (a 100 MB log history through a
socket, list pages capped by bytes), and `/metrics` behind a token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import docker
import httpx
import pytest
import websockets
from sbx_orchestrator.messaging.exec_scheduler import FairScheduler, QueueFull

from tests.support.api import User, create_environment, data_of, error_of, signup
from tests.support.platform import Platform, dedicated_platform, start_api
from tests.support.sandboxes import create_sandbox, lifecycle
from tests.support.sockets import ws_connect, ws_url
from tests.support.waiting import wait_for

METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
CAPS = {
    "SBX_MAX_CONCURRENT_EXECS_PER_USER": "2",
    "SBX_MAX_STREAMS_PER_USER": "2",
    "SBX_MAX_TERMINALS_PER_USER": "1",
    "SBX_MAX_PAGE_BYTES": "1024",
    "SBX_METRICS_TOKEN": METRICS_TOKEN,
}


@pytest.fixture(scope="module")
def capped_api(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """An API process of its own on the shared platform, with small caps and a metrics token."""
    api = start_api(platform.base_env, tmp_path_factory.mktemp("capped-api"), **CAPS)
    yield api
    api.stop_all()


@pytest.fixture
async def capped(capped_api: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with capped_api.client() as http:
        yield http


@pytest.fixture(scope="module")
async def running(platform: Platform) -> AsyncIterator[tuple[User, dict[str, Any]]]:
    """A user with a running sandbox (made through the shared API)."""
    async with platform.client() as http:
        user = await signup(http)
        env = await create_environment(http, user)
        sandbox = await create_sandbox(http, user, env["id"], "?wait=true")
        assert sandbox["status"] == "running", sandbox
        yield user, sandbox
        await http.delete(f"/sandboxes/{sandbox['id']}", headers=user.headers)


def sleeping(container: Any, command: str) -> int:
    """How many processes in the sandbox's container run `command` (as the host's ps sees them)."""
    return sum(1 for p in container.top(ps_args="-eo pid,args")["Processes"] if p[-1] == command)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def closed_with(url: str, timeout: float = 15) -> int | None:
    async with ws_connect(url) as socket:
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await socket.recv()
        return socket.close_code


# --- caps ---------------------------------------------------------------------------------------


async def test_concurrent_execs_over_the_cap_are_429(
    capped: httpx.AsyncClient, running: tuple[User, dict[str, Any]], docker_client: docker.DockerClient
) -> None:
    user, sandbox = running
    path = f"/sandboxes/{sandbox['id']}/exec"
    body = {"command": "sleep 4", "timeoutSeconds": 10}
    held = [asyncio.create_task(capped.post(path, json=body, headers=user.headers)) for _ in range(2)]
    try:
        container = docker_client.containers.get(f"sbx-{sandbox['id']}")
        await wait_for(
            lambda: asyncio.to_thread(lambda: sleeping(container, "sleep 4") == 2),
            timeout=15,
            what="both held commands running",
        )
        response = await capped.post(path, json={"command": "true"}, headers=user.headers)
        error = error_of(response, 429, "QUOTA_EXCEEDED")
        assert error["details"] == {"resource": "execs", "limit": 2, "current": 2}
        assert not any(task.done() for task in held)
    finally:
        results = await asyncio.gather(*held)
    assert [data_of(r)["exitCode"] for r in results] == [0, 0]
    # The slots are given back: a command runs again.
    assert data_of(await capped.post(path, json={"command": "true"}, headers=user.headers))["exitCode"] == 0


async def test_streams_over_the_cap_close_4029_and_sse_is_429(
    capped_api: Platform, capped: httpx.AsyncClient, running: tuple[User, dict[str, Any]]
) -> None:
    user, sandbox = running
    events = ws_url(capped_api.ws_url, "/ws/events", user.token)
    logs = ws_url(capped_api.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, tail=0)
    # A socket is counted once the server has authenticated it, after the handshake: sockets
    # that replay the user's past events (`since=0`) have been counted once a frame arrives.
    replaying = ws_url(capped_api.ws_url, "/ws/events", user.token, since=0)
    async with ws_connect(replaying) as first, ws_connect(replaying) as second:
        await asyncio.wait_for(first.recv(), 15)
        await asyncio.wait_for(second.recv(), 15)
        assert await closed_with(events) == 4029
        assert await closed_with(logs) == 4029
        error = error_of(await capped.get("/events", headers=user.headers), 429, "QUOTA_EXCEEDED")
        assert error["details"] == {"resource": "streams", "limit": 2, "current": 2}
        # Another user's streams are their own.
        other = await signup(capped)
        async with ws_connect(ws_url(capped_api.ws_url, "/ws/events", other.token)) as theirs:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await theirs.recv()
        assert first.close_code is None
        assert second.close_code is None

    # Closed sockets give their slots back.
    async def reopened() -> bool:
        # Counted and served: a replayed event arrives (a refused socket closes with 4029).
        async with ws_connect(replaying) as socket:
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 15)
            return socket.close_code is None

    assert await wait_for(reopened, timeout=30, what="a stream slot given back")


async def test_terminals_over_the_cap_close_4029(
    capped_api: Platform, running: tuple[User, dict[str, Any]]
) -> None:
    user, sandbox = running
    url = ws_url(capped_api.ws_url, f"/ws/sandboxes/{sandbox['id']}/terminal", user.token)
    async with ws_connect(url) as first:
        async with asyncio.timeout(15):
            assert await first.recv() == '{"type":"ready"}'
        assert await closed_with(url) == 4029

    async def reopened() -> bool:
        async with ws_connect(url) as socket:
            async with asyncio.timeout(15):
                try:
                    return await socket.recv() == '{"type":"ready"}'
                except websockets.ConnectionClosed:
                    return False

    assert await wait_for(reopened, timeout=15, what="a terminal slot given back")


async def test_websocket_messages_have_a_size_limit(
    capped_api: Platform, running: tuple[User, dict[str, Any]]
) -> None:
    user, sandbox = running
    url = ws_url(capped_api.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, tail=0)
    async with ws_connect(url) as socket:
        await socket.send("x" * (2 * 1024 * 1024))
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(15):
                while True:
                    await socket.recv()
    assert socket.close_code == 1009


# --- bounded responses ----------------------------------------------------------------------------


async def test_list_pages_are_capped_by_bytes(capped: httpx.AsyncClient) -> None:
    user = await signup(capped)
    made = [(await create_environment(capped, user, env={"BIG": "x" * 600}))["id"] for _ in range(3)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        response = await capped.get("/environments", params=params, headers=user.headers)
        items = data_of(response)
        pages += 1
        assert len(items) == 1  # two would pass SBX_MAX_PAGE_BYTES (1024)
        seen += [item["id"] for item in items]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break
    assert seen == made
    assert pages == 3


async def test_metrics_require_the_token_when_set(capped: httpx.AsyncClient) -> None:
    assert (await capped.get("/metrics")).status_code == 401
    wrong = await capped.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert METRICS_TOKEN not in wrong.text

    async def gauges() -> str | None:
        response = await capped.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200
        return response.text if "\nusers_total " in response.text else None

    text = await wait_for(gauges, timeout=15, what="business gauges computed in the background")
    assert "sandboxes_running" in text


async def test_a_100_mb_log_history_streams_with_flat_memory(
    platform: Platform, capped_api: Platform, pg: asyncpg.Connection
) -> None:
    async with platform.client() as http:
        user = await signup(http)
        env = await create_environment(http, user)
        sandbox = await create_sandbox(http, user, env["id"], "?wait=true")
        # Stopped: the log shipper no longer writes (nor prunes) this sandbox's lines.
        await lifecycle(http, user, sandbox["id"], "stop")
    sandbox_id = uuid.UUID(sandbox["id"])
    start = int(
        await pg.fetchval("SELECT coalesce(max(seq), 0) FROM sandbox_logs WHERE sandbox_id = $1", sandbox_id)
    )
    lines, width = 100_000, 1000
    await pg.execute(
        "INSERT INTO sandbox_logs (sandbox_id, seq, stream, text, ts)"
        " SELECT $1, $2 + g, 'stdout', lpad(g::text, $4, 'x'), now() FROM generate_series(1, $3) AS g",
        sandbox_id,
        start,
        lines,
        width,
    )
    last = start + lines
    await pg.execute(
        "INSERT INTO log_cursors (sandbox_id, last_seq) VALUES ($1, $2)"
        " ON CONFLICT (sandbox_id) DO UPDATE SET last_seq = $2",
        sandbox_id,
        last,
    )
    stored = await pg.fetchval(
        "SELECT sum(octet_length(text)) FROM sandbox_logs WHERE sandbox_id = $1", sandbox_id
    )
    assert stored >= 100_000_000

    pid = capped_api.processes["api"].process.pid  # type: ignore[union-attr]
    before = rss_bytes(pid)
    peak = before
    received = 0
    seq = 0
    url = ws_url(capped_api.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, since=0)
    started = time.monotonic()
    async with ws_connect(url, max_size=None) as socket:
        async with asyncio.timeout(240):
            while seq < last:
                frame = json.loads(await socket.recv())
                if frame["type"] != "log":
                    continue
                assert frame["seq"] == seq + 1 or seq == 0
                seq = frame["seq"]
                received += len(frame["text"])
                if seq % 5000 == 0:
                    peak = max(peak, rss_bytes(pid))
    elapsed = time.monotonic() - started
    after = rss_bytes(pid)
    assert received >= lines * width
    growth = max(peak, after) - before
    print(
        f"100 MB log history: {elapsed:.1f} s, API RSS {before >> 20} MiB before, peak {peak >> 20} MiB, "
        f"after {after >> 20} MiB"
    )
    assert growth < 60 * 1024 * 1024, (before, peak, after)


# --- exec fairness ----------------------------------------------------------------------------------


async def test_one_users_long_execs_never_delay_anothers(
    tmp_path: Path, test_image: str, docker_client: docker.DockerClient
) -> None:
    """A pool of 4 with a share of 2 per user: user A sends 8 commands of 3 s (more than its share
    and than the pool); user B's `echo` answers before any of A's has ended; and A's queued
    commands run to completion within their own 5 s timeout, which starts when each starts."""
    settings = {
        "orchestrator": {"SBX_EXEC_THREADS": "4", "SBX_EXEC_THREADS_PER_USER": "2"},
        "api": {"SBX_MAX_CONCURRENT_EXECS_PER_USER": "50"},
    }
    async with dedicated_platform(tmp_path, ("orchestrator", "api"), service_env=settings) as dedicated:
        async with dedicated.client() as http:
            a, b = await signup(http), await signup(http)
            sandboxes = {}
            for who in (a, b):
                env = await create_environment(http, who, image=test_image)
                sandboxes[who.id] = (await create_sandbox(http, who, env["id"], "?wait=true"))["id"]
                assert (await http.get(f"/sandboxes/{sandboxes[who.id]}", headers=who.headers)).json()[
                    "data"
                ]["status"] == "running"

            def exec_of(who: User, command: str, timeout: int) -> asyncio.Task[httpx.Response]:
                body = {"command": command, "timeoutSeconds": timeout}
                return asyncio.create_task(
                    http.post(f"/sandboxes/{sandboxes[who.id]}/exec", json=body, headers=who.headers)
                )

            container = docker_client.containers.get(f"sbx-{sandboxes[a.id]}")

            started = time.monotonic()
            hog = [exec_of(a, "sleep 3", 5) for _ in range(8)]
            await wait_for(
                lambda: asyncio.to_thread(lambda: sleeping(container, "sleep 3") >= 2),
                timeout=20,
                what="A's share running",
            )
            asked = time.monotonic()
            echo = await exec_of(b, "echo fair", 5)
            latency = time.monotonic() - asked
            still_running = sum(not task.done() for task in hog)
            assert data_of(echo)["stdout"] == "fair\n"
            # Answered before even A's first commands ended: it did not wait behind them.
            assert still_running == 8, "B's exec waited for A's commands"
            assert sleeping(container, "sleep 3") <= 2  # A never runs more than its share

            results = [data_of(r) for r in await asyncio.gather(*hog)]
            total = time.monotonic() - started
            print(
                f"B's echo answered in {latency * 1000:.0f} ms, {still_running} of A's 8 unfinished; "
                f"A's 8 took {total:.1f} s in all"
            )
            # Queued for up to ~9 s, yet none timed out: the 5 s timeout starts when each starts.
            assert [(r["exitCode"], r["timedOut"]) for r in results] == [(0, False)] * 8
            assert total > 9


# --- the orchestrator's scheduler on its own --------------------------------------------------------


async def test_scheduler_shares_slots_in_turn_between_users() -> None:
    """A user at their share waits while another user starts at once; freed slots go to the
    users with requests waiting in turn, and a request that gives up leaves the queue."""
    scheduler = FairScheduler(slots=3, per_user=2, queue_per_user=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    held = [await scheduler.acquire(a, 1), await scheduler.acquire(a, 1)]
    a_third = asyncio.create_task(scheduler.acquire(a, 5))
    await asyncio.sleep(0)
    assert not a_third.done()  # at its share, though a slot is free
    b_first = await asyncio.wait_for(scheduler.acquire(b, 5), 1)  # B is not behind A
    assert scheduler.running == 3

    b_second = asyncio.create_task(scheduler.acquire(b, 5))
    c_first = asyncio.create_task(scheduler.acquire(c, 5))
    await asyncio.sleep(0)
    a_fourth = asyncio.create_task(scheduler.acquire(a, 5))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):  # A's own queue (2) is full
        await scheduler.acquire(a, 5)
    a_fourth.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await a_fourth
    with held.pop():  # A's slot goes to the first user in turn with a share left: A itself
        pass
    a_slot = await asyncio.wait_for(a_third, 1)
    with b_first:  # then B's turn, then C's
        pass
    b_slot = await asyncio.wait_for(b_second, 1)
    assert not c_first.done()
    with b_slot:
        pass
    c_slot = await asyncio.wait_for(c_first, 1)
    assert scheduler.waiting == 0

    with pytest.raises(TimeoutError):
        await scheduler.acquire(c, 0.05)
    assert scheduler.waiting == 0  # the request that gave up is gone
    for slot in (*held, a_slot, c_slot):
        with slot:
            pass
    assert scheduler.running == 0
