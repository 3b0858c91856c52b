"""`/ws/sandboxes/:id/logs` and the lines behind it, through the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from tests.streams.clients import LogReader, StalledClient
from tests.streams.log_store import assert_contiguous, stored_lines
from tests.support.api import User
from tests.support.platform import Platform, extra_api
from tests.support.sandboxes import Sandboxes, exec_in, lifecycle
from tests.support.sockets import close_code_of, ws_connect, ws_url

OUT_ERR = 'i=1; while [ $i -le 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; sleep 600'


def _logs_url(platform: Platform, user: User, sandbox: dict[str, Any], **query: object) -> str:
    return ws_url(platform.ws_url, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, **query)


async def test_lines_and_streams_match_what_the_container_printed(
    platform: Platform, client: httpx.AsyncClient, user: User, sandboxes: Sandboxes, pg: asyncpg.Connection
) -> None:
    sandbox = await sandboxes.run(user, OUT_ERR)
    async with ws_connect(_logs_url(platform, user, sandbox, since=0)) as socket:
        reader = LogReader(socket)
        await reader.read_until(lambda r: len(r.lines) >= 600)
    assert_contiguous(reader.seqs)
    assert {frozenset(frame) for frame in reader.lines} == {
        frozenset({"type", "seq", "stream", "text", "timestamp"})
    }
    stdout = [f["text"] for f in reader.lines if f["stream"] == "stdout"]
    stderr = [f["text"] for f in reader.lines if f["stream"] == "stderr"]
    assert stdout == [f"out {i}" for i in range(1, 301)]
    assert stderr == [f"err {i}" for i in range(1, 301)]
    assert all(f["timestamp"].endswith("Z") for f in reader.lines)

    # The same lines over HTTP, and in the database exactly once each.
    response = await client.get(f"/sandboxes/{sandbox['id']}/logs?tail=1000", headers=user.headers)
    assert [(x["seq"], x["stream"], x["text"]) for x in response.json()["data"]] == [
        (f["seq"], f["stream"], f["text"]) for f in reader.lines
    ]
    assert_contiguous([r["seq"] for r in await stored_lines(pg, sandbox["id"])])

    # `since` is bounded as on the socket: beyond it, a validation error rather than a database's.
    top = await client.get(f"/sandboxes/{sandbox['id']}/logs?since={2**62}", headers=user.headers)
    assert top.status_code == 200, top.text
    assert top.json()["data"] == []
    for since in (2**62 + 1, 2**63, 10**30):
        response = await client.get(f"/sandboxes/{sandbox['id']}/logs?since={since}", headers=user.headers)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert [e["path"] for e in error["details"]["errors"]] == ["since"]


async def test_tail_and_since_choose_the_past_lines(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient
) -> None:
    sandbox = await sandboxes.run(user, "seq 1 50; sleep 600")
    async with ws_connect(_logs_url(platform, user, sandbox, since=0)) as socket:
        await LogReader(socket).read_until(lambda r: len(r.lines) >= 50)

    async with ws_connect(_logs_url(platform, user, sandbox, tail=5)) as socket:
        reader = LogReader(socket)
        await reader.read_until(lambda r: len(r.lines) >= 5)
        assert reader.texts == ["46", "47", "48", "49", "50"]
        assert reader.seqs == [46, 47, 48, 49, 50]

    async with ws_connect(_logs_url(platform, user, sandbox, since=45)) as socket:
        reader = LogReader(socket)
        await reader.read_until(lambda r: len(r.lines) >= 5)
        assert reader.seqs == [46, 47, 48, 49, 50]

    async with ws_connect(_logs_url(platform, user, sandbox)) as socket:  # default tail: 100
        reader = LogReader(socket)
        await reader.read_until(lambda r: len(r.lines) >= 50)
        assert reader.seqs == list(range(1, 51))

    # tail=0: nothing from the past, then what is printed from now on. The socket does not say
    # when it follows, and a line printed before that is a past one: print until one comes.
    async with ws_connect(_logs_url(platform, user, sandbox, tail=0)) as socket:
        reader = LogReader(socket)
        for attempt in range(1, 31):
            await exec_in(client, user, sandbox["id"], f"echo later {attempt} > /proc/1/fd/1")
            with contextlib.suppress(TimeoutError):
                await reader.read_until(lambda r: len(r.lines) >= 1, timeout=2)
                break
        assert len(reader.lines) == 1, "no line printed after connecting came"
        first = int(reader.lines[0]["text"].removeprefix("later "))
        assert [(f["seq"], f["text"]) for f in reader.lines] == [(50 + first, f"later {first}")]

    for bad in ("tail=-1", "tail=abc", "since=x", "tail=10001"):
        url = f"{platform.ws_url}/ws/sandboxes/{sandbox['id']}/logs?token={user.token}&{bad}"
        assert await close_code_of(url) == 1008, bad


async def test_lines_printed_while_connecting_appear_exactly_once(
    platform: Platform, user: User, sandboxes: Sandboxes
) -> None:
    """Clients connect at staggered moments while the sandbox prints; each sees 1..N once."""
    total = 3000
    sandbox = await sandboxes.run(
        user, f"sleep 1; i=1; while [ $i -le {total} ]; do echo $i; i=$((i+1)); usleep 500; done; sleep 600"
    )

    async def follow(delay: float, query: dict[str, object]) -> LogReader:
        await asyncio.sleep(delay)
        async with ws_connect(_logs_url(platform, user, sandbox, **query)) as socket:
            reader = LogReader(socket)
            await reader.read_until(lambda r: bool(r.lines) and r.lines[-1]["seq"] >= total, timeout=90)
            return reader

    readers = await asyncio.gather(
        *(follow(0.3 * i, {"since": 0}) for i in range(4)),
        *(follow(0.3 * i + 0.15, {"tail": 10_000}) for i in range(4)),
        *(follow(0.3 * i + 0.1, {"since": 0, "batch": "true"}) for i in range(2)),
        *(follow(0.3 * i + 0.2, {"tail": 10_000, "batch": "true"}) for i in range(2)),
    )
    for reader in readers:
        assert reader.seqs == list(range(1, total + 1))
        assert reader.texts == [str(i) for i in range(1, total + 1)]
    assert all(reader.batch_sizes for reader in readers[-4:])  # batch readers got batch frames


async def test_batch_frames_carry_exactly_the_lines_of_one_line_frames(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient
) -> None:
    """`batch=true`: past and live lines come as `{type: "logs", lines}` frames, several lines to
    a frame under load, each line once and in order, with the fields and values the one-line
    frames and `GET /logs` have (the live lines' timestamps included)."""
    total = 4000
    script = (
        "seq 1 500; while [ ! -f /go ]; do usleep 20000; done;"
        f' i=501; while [ $i -le {total} ]; do echo "out $i"; echo "err $i" >&2; i=$((i+2)); done; sleep 600'
    )
    sandbox = await sandboxes.run(user, script)
    async with (
        ws_connect(_logs_url(platform, user, sandbox, since=0, batch="true")) as batched,
        ws_connect(_logs_url(platform, user, sandbox, since=0)) as single,
    ):
        batch_reader, line_reader = LogReader(batched), LogReader(single)
        await batch_reader.read_until(lambda r: len(r.lines) >= 500)
        await exec_in(client, user, sandbox["id"], "touch /go")
        await batch_reader.read_until(lambda r: len(r.lines) >= total, timeout=90)
        await line_reader.read_until(lambda r: len(r.lines) >= total, timeout=90)
    assert_contiguous(batch_reader.seqs)
    assert batch_reader.lines == line_reader.lines
    assert not line_reader.batch_sizes
    assert max(batch_reader.batch_sizes) > 1
    response = await client.get(f"/sandboxes/{sandbox['id']}/logs?since=0&tail=10000", headers=user.headers)
    assert [{"type": "log", **line} for line in response.json()["data"]] == batch_reader.lines

    for bad in ("batch=yes", "batch=2"):
        url = f"{platform.ws_url}/ws/sandboxes/{sandbox['id']}/logs?token={user.token}&{bad}"
        assert await close_code_of(url) == 1008, bad


async def test_status_frames_follow_the_sandbox(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient
) -> None:
    sandbox = await sandboxes.run(user, "echo up; sleep 600")
    async with ws_connect(_logs_url(platform, user, sandbox)) as socket:
        reader = LogReader(socket)
        await reader.read_until(lambda r: r.texts == ["up"])
        await lifecycle(client, user, sandbox["id"], "stop")
        await reader.read_until(lambda r: "stopped" in r.statuses)
        assert reader.statuses[0] == "stopping"
        await lifecycle(client, user, sandbox["id"], "start")
        await reader.read_until(lambda r: r.statuses[-1] == "running" and r.texts == ["up", "up"])
        await lifecycle(client, user, sandbox["id"], "destroy")
        with contextlib.suppress(websockets.ConnectionClosed):
            await reader.read_until(lambda r: False)
    assert reader.statuses[-1] == "destroyed"
    assert socket.close_code == 1000


async def test_binary_output_is_stored_and_sent_safely(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient
) -> None:
    script = "printf 'a\\000b\\377c\\n'; printf '\\033[31mred\\033[0m\\n'; echo done; sleep 600"
    sandbox = await sandboxes.run(user, script)
    async with ws_connect(_logs_url(platform, user, sandbox)) as socket:
        reader = LogReader(socket)
        await reader.read_until(lambda r: len(r.lines) >= 3)
    assert reader.texts == ["ab\ufffdc", "\x1b[31mred\x1b[0m", "done"]
    response = await client.get(f"/sandboxes/{sandbox['id']}/logs", headers=user.headers)
    assert [x["text"] for x in response.json()["data"]] == reader.texts


async def test_logs_socket_refuses_bad_tokens_and_foreign_sandboxes(
    platform: Platform, user: User, other_user: User, sandboxes: Sandboxes
) -> None:
    sandbox = await sandboxes.run(user, "sleep 600")
    path = f"/ws/sandboxes/{sandbox['id']}/logs"
    assert await close_code_of(f"{platform.ws_url}{path}") == 4001
    assert await close_code_of(ws_url(platform.ws_url, path, "not-a-token")) == 4001
    assert await close_code_of(ws_url(platform.ws_url, path, other_user.token)) == 4004
    unknown = f"/ws/sandboxes/{uuid.uuid4()}/logs"
    assert await close_code_of(ws_url(platform.ws_url, unknown, user.token)) == 4004
    assert await close_code_of(ws_url(platform.ws_url, "/ws/sandboxes/not-an-id/logs", user.token)) == 4004


@pytest.mark.parametrize("batch", [False, True], ids=["one-line-frames", "batch-frames"])
async def test_a_slow_client_is_closed_and_never_slows_the_others(
    platform: Platform,
    user: User,
    sandboxes: Sandboxes,
    tmp_path: Path,
    pg: asyncpg.Connection,
    *,
    batch: bool,
) -> None:
    """20,000 lines of 1 KB at up to 10,000 a second: more than a client that reads nothing can
    absorb in its TCP buffers plus a 2,000-line server buffer, and easy for one that reads (with
    one-line frames, or batch frames for both clients)."""
    total = 20_000
    script = (
        "L=$(head -c 1000 /dev/zero | tr '\\000' x); while [ ! -f /go ]; do usleep 50000; done;"
        f' i=1; while [ $i -le {total} ]; do echo "$i $L";'
        " if [ $((i % 200)) -eq 0 ]; then usleep 20000; fi; i=$((i+1)); done; sleep 600"
    )
    sandbox = await sandboxes.run(user, script)
    async with extra_api(platform, tmp_path, SBX_WS_LOG_BUFFER_LINES="2000") as api:
        base = str(api.base_url.copy_with(scheme="ws")).rstrip("/")
        query: dict[str, object] = {"tail": 0, "batch": "true"} if batch else {"tail": 0}
        url = ws_url(base, f"/ws/sandboxes/{sandbox['id']}/logs", user.token, **query)
        slow = StalledClient(url)  # connects, then reads nothing for now
        await slow.connect()
        async with ws_connect(url, max_size=None) as fast:
            await api.post(
                f"/sandboxes/{sandbox['id']}/exec", json={"command": "touch /go"}, headers=user.headers
            )
            reader = LogReader(fast)
            await reader.read_until(lambda r: len(r.lines) >= total, timeout=120)
            assert reader.seqs == list(range(1, total + 1))
            assert [t.split(" ")[0] for t in reader.texts] == [str(i) for i in range(1, total + 1)]

            # Now the slow client reads what reached it: a prefix of the lines, then 1013.
            assert await slow.drain() == 1013
            frames = [json.loads(text) for text in slow.texts()]
            assert {frame["type"] for frame in frames} == ({"logs"} if batch else {"log"})
            seqs = [line["seq"] for frame in frames for line in frame.get("lines", [frame])]
            assert seqs == list(range(1, len(seqs) + 1))
            assert len(seqs) < total
    # The shipper kept up: the newest lines are stored (older ones pruned to the retention).
    seqs = [r["seq"] for r in await stored_lines(pg, sandbox["id"])]
    assert seqs[-1] == total
    assert_contiguous(seqs, first=seqs[0])


async def _frames_until_closed(url: str, timeout: float = 15) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame the socket sends, in order, and its close code; fails if it does not close."""
    frames: list[dict[str, Any]] = []
    async with ws_connect(url) as socket:
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    frames.append(json.loads(await socket.recv()))
        return frames, socket.close_code


async def test_socket_on_an_ended_sandbox_sends_its_lines_then_its_status_and_closes(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient, pg: asyncpg.Connection
) -> None:
    sandbox = await sandboxes.run(user, "seq 1 5; sleep 600")
    async with ws_connect(_logs_url(platform, user, sandbox, since=0)) as socket:
        await LogReader(socket).read_until(lambda r: len(r.lines) >= 5)
    await lifecycle(client, user, sandbox["id"], "destroy")

    for status in ("destroyed", "expired"):
        if status == "expired":  # what the orchestrator records when the TTL ran out instead
            await pg.execute(
                "UPDATE sandbox_runtime SET status = 'expired', status_reason = 'ttl'"
                " WHERE sandbox_id = $1::uuid",
                sandbox["id"],
            )
        for query, texts in (
            ({"since": 0}, ["1", "2", "3", "4", "5"]),
            ({"tail": 2}, ["4", "5"]),
            ({"tail": 0}, []),
        ):
            frames, code = await _frames_until_closed(_logs_url(platform, user, sandbox, **query))
            assert [f["text"] for f in frames[:-1]] == texts, (status, query)
            assert frames[-1] == {"type": "status", "status": status}
            assert code == 1000


async def test_socket_of_a_sandbox_destroyed_meanwhile_sends_every_line_then_the_status(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient, pg: asyncpg.Connection
) -> None:
    sandbox = await sandboxes.run(user, "i=1; while :; do echo $i; i=$((i+1)); usleep 200; done")
    url = _logs_url(platform, user, sandbox, since=0)
    frames: list[dict[str, Any]] = []
    async with ws_connect(url) as socket:
        async with asyncio.timeout(30):
            while len(frames) < 500:
                frames.append(json.loads(await socket.recv()))
        destroyed = asyncio.create_task(lifecycle(client, user, sandbox["id"], "destroy"))
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    frames.append(json.loads(await socket.recv()))
        await destroyed
    assert socket.close_code == 1000
    assert frames[-1] == {"type": "status", "status": "destroyed"}
    seqs = [f["seq"] for f in frames if f["type"] == "log"]
    assert seqs == list(range(1, len(seqs) + 1))
    # Every line stored reached the client, before the status.
    last_seq = await pg.fetchval(
        "SELECT last_seq FROM log_cursors WHERE sandbox_id = $1::uuid", sandbox["id"]
    )
    assert seqs[-1] == last_seq
