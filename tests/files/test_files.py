"""The files routes end to end (real NATS, PostgreSQL, Docker): list, stat, content with Range
and mode, mkdir, delete, move, on running (runc and gVisor), paused and stopped sandboxes; paths
that try to leave the sandbox; the contract's error codes; a full volume (507, nothing left)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import User, create_environment, data_of, error_of, signup
from tests.support.sandboxes import destroy_all, exec_in, lifecycle

SCRIPT = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> AsyncIterator[User]:
    user = await signup(client)
    yield user
    await destroy_all(client, user)
    listed = await client.get("/volumes?limit=500", headers=user.headers)
    for volume in listed.json()["data"]:
        await client.delete(f"/volumes/{volume['id']}", headers=user.headers)


async def new_sandbox(
    client: httpx.AsyncClient, user: User, image: str, runtime: str = "runc", **body: Any
) -> str:
    env = await create_environment(client, user, image, cpu=0.5, memory=64, command=SCRIPT, runtime=runtime)
    response = await client.post(
        "/sandboxes?wait=true&timeout=60", json={"environmentId": env["id"], **body}, headers=user.headers
    )
    sandbox = data_of(response, 201)
    assert sandbox["status"] == "running", sandbox
    return str(sandbox["id"])


async def raw_put_headers(
    client: httpx.AsyncClient, user: User, target: str, length: int
) -> tuple[int, bytes]:
    """A PUT that declares `length` bytes and sends none (httpx will not): the answer."""
    url = client.base_url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = f"PUT {target} HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in user.headers.items()) + "Connection: close\r\n\r\n"
    writer.write(head.encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


def files(sandbox_id: str) -> str:
    return f"/sandboxes/{sandbox_id}/files"


async def put(
    client: httpx.AsyncClient, user: User, sid: str, path: str, body: bytes, **query: str
) -> httpx.Response:
    return await client.put(
        f"{files(sid)}/content", params={"path": path, **query}, content=body, headers=user.headers
    )


async def get(client: httpx.AsyncClient, user: User, sid: str, path: str, **headers: str) -> httpx.Response:
    return await client.get(
        f"{files(sid)}/content", params={"path": path}, headers={**user.headers, **headers}
    )


async def exercise_reads_and_writes(client: httpx.AsyncClient, user: User, sid: str, tag: str) -> None:
    """What every state supports: upload (parents, mode), download (Range), stat, list, mkdir."""
    payload = os.urandom(300_000) + tag.encode()
    made = data_of(await put(client, user, sid, f"/work/{tag}/deep/data.bin", payload, mode="0600"), 201)
    assert made == {"path": f"/work/{tag}/deep/data.bin", "size": len(payload)}
    got = await get(client, user, sid, f"/work/{tag}/deep/data.bin")
    assert got.status_code == 200
    assert got.headers["content-length"] == str(len(payload))
    assert got.content == payload
    part = await get(client, user, sid, f"/work/{tag}/deep/data.bin", Range="bytes=100-199")
    assert part.status_code == 206, part.text
    assert part.content == payload[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(payload)}"
    tail = await get(client, user, sid, f"/work/{tag}/deep/data.bin", Range="bytes=-5")
    assert tail.status_code == 206
    assert tail.content == payload[-5:]
    bad = await get(client, user, sid, f"/work/{tag}/deep/data.bin", Range=f"bytes={len(payload) + 10}-")
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{len(payload)}"
    stat = data_of(
        await client.get(
            f"{files(sid)}/stat", params={"path": f"/work/{tag}/deep/data.bin"}, headers=user.headers
        )
    )
    assert stat["type"] == "file"
    assert stat["size"] == len(payload)
    assert stat["mode"] == "0600"
    assert stat["name"] == "data.bin"
    assert stat["modifiedAt"]
    made_dir = data_of(
        await client.post(
            f"{files(sid)}/mkdir", json={"path": f"/work/{tag}/a/b", "parents": True}, headers=user.headers
        ),
        201,
    )
    assert made_dir["type"] == "dir"
    assert made_dir["path"] == f"/work/{tag}/a/b"
    listed = data_of(await client.get(files(sid), params={"path": f"/work/{tag}"}, headers=user.headers))
    assert [(e["name"], e["type"]) for e in listed] == [("a", "dir"), ("deep", "dir")]
    assert listed[1]["path"] == f"/work/{tag}/deep"
    # Wrong kinds and missing paths.
    error_of(
        await client.get(files(sid), params={"path": f"/work/{tag}/deep/data.bin"}, headers=user.headers),
        409,
        "NOT_A_DIRECTORY",
    )
    error_of(await get(client, user, sid, f"/work/{tag}/deep"), 409, "IS_A_DIRECTORY")
    error_of(await put(client, user, sid, f"/work/{tag}/deep", b"x"), 409, "IS_A_DIRECTORY")
    error_of(await get(client, user, sid, f"/work/{tag}/missing"), 404, "NOT_FOUND")
    error_of(
        await client.get(files(sid), params={"path": f"/work/{tag}/missing"}, headers=user.headers),
        404,
        "NOT_FOUND",
    )
    error_of(
        await client.post(f"{files(sid)}/mkdir", json={"path": f"/work/{tag}/deep"}, headers=user.headers),
        409,
        "CONFLICT",
    )
    error_of(await put(client, user, sid, "relative/path", b"x"), 400, "VALIDATION_ERROR")
    error_of(await put(client, user, sid, "/.sbx/agent", b"x"), 400, "VALIDATION_ERROR")


async def test_running_sandbox_every_route(client: httpx.AsyncClient, owner: User, test_image: str) -> None:
    sid = await new_sandbox(client, owner, test_image)
    await exercise_reads_and_writes(client, owner, sid, "run")
    # The sandbox sees what was uploaded, and the API sees what the sandbox wrote.
    seen = await exec_in(
        client, owner, sid, "wc -c < /work/run/deep/data.bin; echo inside > /work/run/in.txt"
    )
    assert seen["stdout"].split()[0] == str(300_003)
    assert (await get(client, owner, sid, "/work/run/in.txt")).content == b"inside\n"
    # Move: refused onto an existing path without overwrite, then done with it.
    data_of(await put(client, owner, sid, "/work/run/x.txt", b"x"), 201)
    error_of(
        await client.post(
            f"{files(sid)}/move",
            json={"from": "/work/run/in.txt", "to": "/work/run/x.txt"},
            headers=owner.headers,
        ),
        409,
        "CONFLICT",
    )
    moved = data_of(
        await client.post(
            f"{files(sid)}/move",
            json={"from": "/work/run/in.txt", "to": "/work/run/x.txt", "overwrite": True},
            headers=owner.headers,
        )
    )
    assert moved["path"] == "/work/run/x.txt"
    assert moved["size"] == 7
    error_of(await get(client, owner, sid, "/work/run/in.txt"), 404, "NOT_FOUND")
    # Delete: a non-empty directory needs recursive.
    error_of(
        await client.delete(files(sid), params={"path": "/work/run/a"}, headers=owner.headers),
        409,
        "CONFLICT",
    )
    deleted = data_of(
        await client.delete(
            files(sid), params={"path": "/work/run/a", "recursive": "true"}, headers=owner.headers
        )
    )
    assert deleted == {"path": "/work/run/a", "deleted": True}
    error_of(
        await client.get(f"{files(sid)}/stat", params={"path": "/work/run/a"}, headers=owner.headers),
        404,
        "NOT_FOUND",
    )
    error_of(
        await client.delete(files(sid), params={"path": "/"}, headers=owner.headers), 400, "VALIDATION_ERROR"
    )
    # Uploads replace atomically and leave no temporary file behind.
    data_of(await put(client, owner, sid, "/work/run/x.txt", b"second"), 201)
    listing = data_of(await client.get(files(sid), params={"path": "/work/run"}, headers=owner.headers))
    assert sorted(e["name"] for e in listing) == ["deep", "x.txt"]


async def test_paths_stay_inside_the_sandbox(client: httpx.AsyncClient, owner: User, test_image: str) -> None:
    sid = await new_sandbox(client, owner, test_image)
    setup = await exec_in(
        client,
        owner,
        sid,
        "ln -s / /work-root && ln -s /etc /myetc && echo sandbox-passwd > /etc/passwd-probe",
    )
    assert setup["exitCode"] == 0, setup
    # `..` above the root stays at the root; a symlink to / then `..` stays inside.
    got = await get(client, owner, sid, "/../../etc/passwd-probe")
    assert got.content == b"sandbox-passwd\n"
    got = await get(client, owner, sid, "/work-root/../../etc/passwd-probe")
    assert got.content == b"sandbox-passwd\n"
    hostname = (await get(client, owner, sid, "/myetc/hostname")).content
    assert (
        hostname.strip()
        == (await exec_in(client, owner, sid, "cat /etc/hostname"))["stdout"].strip().encode()
    )
    # Writes through a symlink land in the sandbox's /etc, never the host's.
    data_of(await put(client, owner, sid, "/myetc/written-through-link", b"inside"), 201)
    assert not os.path.exists("/etc/written-through-link")
    assert (await exec_in(client, owner, sid, "cat /etc/written-through-link"))["stdout"] == "inside"
    # The platform's directory cannot be written, whatever path leads there.
    await exec_in(client, owner, sid, "ln -s /.sbx /agentlink")
    error_of(await put(client, owner, sid, "/agentlink/x", b"x"), 400, "VALIDATION_ERROR")
    error_of(
        await client.delete(files(sid), params={"path": "/.sbx"}, headers=owner.headers),
        400,
        "VALIDATION_ERROR",
    )


async def change_while_paused(client: httpx.AsyncClient, user: User, sid: str, probe: str) -> None:
    """Delete and move on a paused runc sandbox: the contract's codes, and symlinks resolved in
    the sandbox's root (the change is made from the host, as root)."""
    work = "/work/paused"
    error_of(
        await client.delete(files(sid), params={"path": f"{work}/a"}, headers=user.headers), 409, "CONFLICT"
    )
    deleted = await client.delete(
        files(sid), params={"path": f"{work}/a", "recursive": "true"}, headers=user.headers
    )
    assert data_of(deleted) == {"path": f"{work}/a", "deleted": True}
    error_of(
        await client.delete(files(sid), params={"path": f"{work}/a"}, headers=user.headers), 404, "NOT_FOUND"
    )
    moved = data_of(
        await client.post(
            f"{files(sid)}/move",
            json={"from": f"{work}/deep/data.bin", "to": f"{work}/moved.bin"},
            headers=user.headers,
        )
    )
    assert (moved["path"], moved["size"], moved["type"]) == (f"{work}/moved.bin", 300_006, "file")
    # Through a symlink to / (made by the sandbox): its own /tmp, never the host's.
    deleted = await client.delete(files(sid), params={"path": f"/escape/tmp/{probe}"}, headers=user.headers)
    assert data_of(deleted)["deleted"] is True
    assert Path(f"/tmp/{probe}").read_text() == "host"
    data_of(
        await client.post(
            f"{files(sid)}/move",
            json={"from": f"{work}/moved.bin", "to": f"/escape/tmp/{probe}-moved"},
            headers=user.headers,
        )
    )
    assert not Path(f"/tmp/{probe}-moved").exists()
    error_of(
        await client.delete(
            files(sid), params={"path": "/escape/.sbx", "recursive": "true"}, headers=user.headers
        ),
        400,
        "VALIDATION_ERROR",
    )


@pytest.mark.parametrize("runtime", ["runc", "gvisor"])
async def test_paused_and_stopped_sandboxes(
    client: httpx.AsyncClient, owner: User, test_image: str, runtime: str
) -> None:
    sid = await new_sandbox(client, owner, test_image, runtime=runtime)
    probe = f"sbx-probe-{uuid.uuid4().hex[:8]}"
    host_probe = Path(f"/tmp/{probe}")
    host_probe.write_text("host")
    try:
        setup = f"mkdir -p /tmp && ln -s / /escape && echo inside > /tmp/{probe}"
        made = await exec_in(client, owner, sid, setup)
        assert made["exitCode"] == 0, made
        paused = await lifecycle(client, owner, sid, "pause")
        assert paused["status"] == "paused"
        await exercise_reads_and_writes(client, owner, sid, "paused")
        if runtime == "runc":
            await change_while_paused(client, owner, sid, probe)
        else:  # gVisor: the host's view of its files is not the sandbox's (docs/files.md)
            error_of(
                await client.delete(files(sid), params={"path": "/work/paused/a"}, headers=owner.headers),
                409,
                "NOT_RUNNING",
            )
        stopped = await lifecycle(client, owner, sid, "stop")
        assert stopped["status"] == "stopped"
        await exercise_reads_and_writes(client, owner, sid, "stopped")
        for refused in (
            client.delete(files(sid), params={"path": "/work/stopped/a"}, headers=owner.headers),
            client.post(
                f"{files(sid)}/move",
                json={"from": "/work/stopped/a", "to": "/work/stopped/b"},
                headers=owner.headers,
            ),
        ):
            error_of(await refused, 409, "NOT_RUNNING")
        # What was written while paused and stopped is there once the sandbox runs again.
        assert (await lifecycle(client, owner, sid, "start"))["status"] == "running"
        seen = await exec_in(client, owner, sid, "wc -c < /work/stopped/deep/data.bin; ls /work")
        assert seen["stdout"].split() == ["300007", "paused", "stopped"]
        if runtime == "runc":
            state = await exec_in(client, owner, sid, f"ls /tmp; ls /work/paused; wc -c < /tmp/{probe}-moved")
            names = state["stdout"].split()
            assert probe not in names
            assert f"{probe}-moved" in names
            assert names[-1] == "300006"
            assert "a" not in names
    finally:
        host_probe.unlink(missing_ok=True)


async def test_gvisor_running_sandbox_sees_uploads(
    client: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image, runtime="gvisor")
    await exercise_reads_and_writes(client, owner, sid, "gv")
    seen = await exec_in(
        client, owner, sid, "cat /work/gv/deep/data.bin | wc -c; echo gv-inside > /tmp/in.txt"
    )
    assert seen["stdout"].split()[0] == "300002"
    assert (await get(client, owner, sid, "/tmp/in.txt")).content == b"gv-inside\n"
    data_of(await put(client, owner, sid, "/tmp/in.txt", b"replaced"), 201)
    assert (await exec_in(client, owner, sid, "cat /tmp/in.txt"))["stdout"] == "replaced"


async def test_full_volume_is_507_and_leaves_nothing(
    client: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    volume = data_of(
        await client.post("/volumes", json={"name": "small", "sizeMiB": 8}, headers=owner.headers), 201
    )
    sid = await new_sandbox(
        client, owner, test_image, volumes=[{"volumeId": volume["id"], "mountPath": "/data"}]
    )
    data_of(await put(client, owner, sid, "/data/keep.txt", b"old contents"), 201)
    response = await put(client, owner, sid, "/data/keep.txt", os.urandom(16 * 1024 * 1024))
    error_of(response, 507, "STORAGE_FULL")
    listing = data_of(await client.get(files(sid), params={"path": "/data"}, headers=owner.headers))
    assert sorted(e["name"] for e in listing if e["name"] != "lost+found") == ["keep.txt"]
    assert (await get(client, owner, sid, "/data/keep.txt")).content == b"old contents"


async def test_other_users_sandbox_and_limits(
    client: httpx.AsyncClient, owner: User, other_user: User, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    error_of(await client.get(files(sid), params={"path": "/"}, headers=other_user.headers), 404, "NOT_FOUND")
    error_of(await put(client, other_user, sid, "/x", b"x"), 404, "NOT_FOUND")
    error_of(await get(client, other_user, sid, "/etc/hostname"), 404, "NOT_FOUND")
    # Refused on its declared length, before a byte of the body is read.
    status, body = await raw_put_headers(
        client, owner, f"{files(sid)}/content?path=/big", 512 * 1024 * 1024 + 1
    )
    assert status == 413
    assert b"PAYLOAD_TOO_LARGE" in body
    error_of(await put(client, owner, sid, "/x", b"x", mode="999"), 400, "VALIDATION_ERROR")
    await lifecycle(client, owner, sid, "destroy")
    error_of(await client.get(files(sid), params={"path": "/"}, headers=owner.headers), 409, "INVALID_STATE")
