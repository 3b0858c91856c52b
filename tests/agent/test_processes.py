"""Background processes end to end (API, NATS, orchestrator, agent): output kept and read later,
the socket from a seq, stdin, signals, a terminal's size, timeouts, caps, the sandbox stopping."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from tests.agent.processes import (
    all_output,
    get,
    output,
    read_socket,
    socket_url,
    start,
    text_of,
    wait_ended,
)
from tests.support.api import User, create_environment, data_of, error_of, signup
from tests.support.platform import Platform
from tests.support.sandboxes import create_sandbox, destroy_all, lifecycle
from tests.support.sockets import close_code_of


@pytest.fixture
async def sandbox(client: httpx.AsyncClient, user: User, test_image: str) -> Any:
    env = await create_environment(client, user, test_image, cpu=0.5, memory=64)
    created = await create_sandbox(client, user, env["id"], "?wait=true&timeout=90")
    assert created["status"] == "running", created
    yield created
    await destroy_all(client, user)


async def test_output_is_kept_and_read_later_in_order(
    client: httpx.AsyncClient, user: User, sandbox: Any
) -> None:
    sid = sandbox["id"]
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done; echo done >&2; exit 3"
    process = await start(client, user, sid, script)
    assert process["status"] == "running"
    assert process["command"] == ["sh", "-c", script]
    assert process["pid"] > 0
    assert process["tty"] is False
    ended = await wait_ended(client, user, sid, process["id"])
    assert (ended["status"], ended["exitCode"], ended["signal"]) == ("exited", 3, None)
    assert ended["endedAt"] is not None

    chunks = await all_output(client, user, sid, process["id"])
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert text_of(chunks, "stdout") == "".join(f"line-{i}\n" for i in range(300))
    assert text_of(chunks, "stderr") == "done\n"
    page = await output(client, user, sid, process["id"], since=0, limit=1, encoding="base64")
    assert len(page["data"]) == 1
    assert page["nextSince"] == 1
    assert page["truncatedBefore"] is None
    # The first chunk in seq order, whichever stream it came from (stdout and stderr are two
    # pipes, read side by side: "done" on stderr may be numbered before the stdout lines).
    assert page["data"][0]["stream"] == chunks[0]["stream"]
    assert base64.b64decode(page["data"][0]["data"]).decode() == chunks[0]["text"]
    after = await output(client, user, sid, process["id"], since=chunks[-1]["seq"])
    assert (after["data"], after["nextSince"]) == ([], chunks[-1]["seq"])

    listed = data_of(await client.get(f"/sandboxes/{sid}/processes", headers=user.headers))
    assert process["id"] in [p["id"] for p in listed]
    running = data_of(await client.get(f"/sandboxes/{sid}/processes?status=running", headers=user.headers))
    assert process["id"] not in [p["id"] for p in running]


async def test_socket_replays_from_a_seq_then_follows_to_the_exit(
    platform: Platform, client: httpx.AsyncClient, user: User, sandbox: Any
) -> None:
    sid = sandbox["id"]
    process = await start(
        client, user, sid, "i=1; while [ $i -le 40 ]; do echo n-$i; i=$((i+1)); sleep 0.05; done"
    )
    first, exit_frame = await read_socket(socket_url(platform.ws_url, user, sid, process["id"]), stop_after=3)
    assert exit_frame is None
    assert [f["seq"] for f in first] == [1, 2, 3]
    # Reattached at seq 3: everything after it, once, in order, then the exit.
    rest, exit_frame = await read_socket(socket_url(platform.ws_url, user, sid, process["id"], since=3))
    seqs = [f["seq"] for f in rest]
    assert seqs == list(range(4, 4 + len(seqs)))
    assert "".join(f["text"] for f in first + rest) == "".join(f"n-{i}\n" for i in range(1, 41))
    assert exit_frame == {"type": "exit", "status": "exited", "exitCode": 0, "signal": None}
    # After the end: the socket replays and closes.
    again, exit_frame = await read_socket(socket_url(platform.ws_url, user, sid, process["id"], since=0))
    assert len(again) == len(first) + len(rest)
    assert exit_frame is not None
    assert all(f["timestamp"].endswith("Z") for f in again)
    # encoding=base64: the exact bytes in `data`, no `text`; another encoding is refused (1008).
    exact, _ = await read_socket(
        socket_url(platform.ws_url, user, sid, process["id"], since=0, encoding="base64"), stop_after=1
    )
    assert "text" not in exact[0]
    assert base64.b64decode(exact[0]["data"]).decode() == again[0]["text"]
    bad = socket_url(platform.ws_url, user, sid, process["id"], encoding="utf-16")
    assert await close_code_of(bad) == 1008


async def test_stdin_then_eof(
    platform: Platform, client: httpx.AsyncClient, user: User, sandbox: Any
) -> None:
    sid = sandbox["id"]
    process = await start(
        client, user, sid, ["sh", "-c", "while read line; do echo got-$line; done; echo bye"], stdin=True
    )
    path = f"/sandboxes/{sid}/processes/{process['id']}/stdin"
    written = data_of(await client.post(path, content=b"one\n", headers=user.headers))
    assert written == {"written": 4}
    data_of(await client.post(path + "?eof=true", content=b"two\n", headers=user.headers))
    ended = await wait_ended(client, user, sid, process["id"])
    assert ended["exitCode"] == 0
    assert text_of(await all_output(client, user, sid, process["id"])) == "got-one\ngot-two\nbye\n"
    # Stdin of an ended process, or of one started without it.
    error_of(await client.post(path, content=b"x", headers=user.headers), 409, "INVALID_STATE")
    plain = await start(client, user, sid, "sleep 30")
    plain_path = f"/sandboxes/{sid}/processes/{plain['id']}/stdin"
    error_of(await client.post(plain_path, content=b"x", headers=user.headers), 409, "INVALID_STATE")
    # Stdin through the socket.
    reader = await start(client, user, sid, "read a; echo sock-$a", stdin=True)
    frames, exit_frame = await read_socket(
        socket_url(platform.ws_url, user, sid, reader["id"]), send=[b"hi\n"]
    )
    assert "".join(f["text"] for f in frames) == "sock-hi\n"
    assert exit_frame is not None


async def test_signal_timeout_and_validation(client: httpx.AsyncClient, user: User, sandbox: Any) -> None:
    sid = sandbox["id"]
    sleeper = await start(client, user, sid, ["sleep", "60"])
    base = f"/sandboxes/{sid}/processes/{sleeper['id']}"
    error_of(
        await client.post(base + "/signal", json={"signal": "BOGUS"}, headers=user.headers),
        400,
        "VALIDATION_ERROR",
    )
    error_of(
        await client.post(base + "/resize", json={"cols": 80, "rows": 24}, headers=user.headers),
        409,
        "INVALID_STATE",
    )
    data_of(await client.post(base + "/signal", json={"signal": "TERM"}, headers=user.headers))
    ended = await wait_ended(client, user, sid, sleeper["id"])
    assert (ended["status"], ended["signal"], ended["exitCode"]) == ("exited", "TERM", 143)

    slow = await start(client, user, sid, ["sleep", "60"], timeoutSeconds=1)
    assert (await wait_ended(client, user, sid, slow["id"]))["status"] == "killed"

    missing = await start(client, user, sid, ["no-such-program"])
    ended = await wait_ended(client, user, sid, missing["id"])
    assert ended["exitCode"] == 127
    error_of(
        await client.get(
            f"/sandboxes/{sid}/processes/00000000-0000-0000-0000-000000000000", headers=user.headers
        ),
        404,
        "NOT_FOUND",
    )
    error_of(
        await client.post(f"/sandboxes/{sid}/processes", json={"command": []}, headers=user.headers),
        400,
        "VALIDATION_ERROR",
    )
    other = await signup(client)
    error_of(await client.get(base, headers=other.headers), 404, "NOT_FOUND")


async def test_terminal_size_and_resize(
    platform: Platform, client: httpx.AsyncClient, user: User, sandbox: Any
) -> None:
    sid = sandbox["id"]
    process = await start(client, user, sid, "stty size; read x; stty size", tty=True, cols=100, rows=30)
    base = f"/sandboxes/{sid}/processes/{process['id']}"

    async def sized() -> bool:
        return "30 100" in text_of(await all_output(client, user, sid, process["id"]))

    from tests.support.waiting import wait_for

    await wait_for(sized, what="the first stty size")
    data_of(await client.post(base + "/resize", json={"cols": 120, "rows": 40}, headers=user.headers))
    data_of(await client.post(base + "/stdin", content=b"\n", headers=user.headers))
    ended = await wait_ended(client, user, sid, process["id"])
    assert ended["exitCode"] == 0
    chunks = await all_output(client, user, sid, process["id"])
    assert {c["stream"] for c in chunks} == {"pty"}
    assert "40 120" in text_of(chunks)


async def test_cap_and_processes_killed_when_the_sandbox_stops(
    client: httpx.AsyncClient, user: User, sandbox: Any
) -> None:
    sid = sandbox["id"]
    started = await asyncio.gather(*(start(client, user, sid, ["sleep", "120"]) for _ in range(16)))
    refused = error_of(
        await client.post(
            f"/sandboxes/{sid}/processes", json={"command": ["sleep", "1"]}, headers=user.headers
        ),
        429,
        "QUOTA_EXCEEDED",
    )
    assert (refused["details"]["limit"], refused["details"]["current"]) == (16, 16)
    await lifecycle(client, user, sid, "stop")
    for process in started:
        assert (await get(client, user, sid, process["id"]))["status"] == "killed"
    error_of(
        await client.post(f"/sandboxes/{sid}/processes", json={"command": ["true"]}, headers=user.headers),
        409,
        "NOT_RUNNING",
    )


async def test_pause_resume_keeps_a_process_and_restart_kills_it(
    client: httpx.AsyncClient, user: User, sandbox: Any
) -> None:
    sid = sandbox["id"]
    process = await start(
        client, user, sid, "i=1; while [ $i -le 30 ]; do echo p-$i; i=$((i+1)); sleep 0.1; done"
    )
    await lifecycle(client, user, sid, "pause")
    assert (await get(client, user, sid, process["id"]))["status"] == "running"  # frozen, not ended
    await lifecycle(client, user, sid, "resume")
    ended = await wait_ended(client, user, sid, process["id"])
    assert (ended["status"], ended["exitCode"]) == ("exited", 0)
    chunks = await all_output(client, user, sid, process["id"])
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert text_of(chunks) == "".join(f"p-{i}\n" for i in range(1, 31))

    sleeper = await start(client, user, sid, ["sleep", "120"])
    await lifecycle(client, user, sid, "restart")
    assert (await get(client, user, sid, sleeper["id"]))["status"] == "killed"
