"""Files of a running sandbox through the agent (docs/files.md): on an image with no shell at
all, list, stat, read (whole and a range), write (parents made, mode), move, delete, and the
platform's directory refused; the shell scripts could not do any of it there."""

from __future__ import annotations

import httpx

from tests.agent.test_agent_exec import running_sandbox
from tests.support.api import User
from tests.support.sandboxes import destroy_all


async def test_files_without_a_shell(client: httpx.AsyncClient, user: User, no_shell_image: str) -> None:
    sandbox = await running_sandbox(client, user, no_shell_image)
    files = f"/sandboxes/{sandbox['id']}/files"
    body = bytes(range(256)) * 8192  # 2 MiB: more than one piece each way
    put = await client.put(
        f"{files}/content",
        params={"path": "/data/sub/a.bin", "mode": "0600"},
        content=body,
        headers=user.headers,
    )
    assert put.status_code == 201, put.text
    assert put.json()["data"]["size"] == len(body)

    got = await client.get(f"{files}/content", params={"path": "/data/sub/a.bin"}, headers=user.headers)
    assert (got.status_code, got.content == body) == (200, True)
    ranged = await client.get(
        f"{files}/content",
        params={"path": "/data/sub/a.bin"},
        headers={**user.headers, "Range": "bytes=10-19"},
    )
    assert (ranged.status_code, ranged.content) == (206, body[10:20])

    listed = await client.get(files, params={"path": "/data/sub"}, headers=user.headers)
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["data"]
    assert (entry["name"], entry["type"], entry["size"], entry["mode"]) == (
        "a.bin",
        "file",
        len(body),
        "0600",
    )
    opt = await client.get(files, params={"path": "/opt"}, headers=user.headers)
    assert [e["name"] for e in opt.json()["data"]] == ["busybox"]

    moved = await client.post(
        f"{files}/move", json={"from": "/data/sub/a.bin", "to": "/data/b.bin"}, headers=user.headers
    )
    assert (moved.status_code, moved.json()["data"]["path"]) == (200, "/data/b.bin")
    not_dir = await client.get(files, params={"path": "/data/b.bin"}, headers=user.headers)
    assert (not_dir.status_code, not_dir.json()["error"]["code"]) == (409, "NOT_A_DIRECTORY")
    refused = await client.put(
        f"{files}/content", params={"path": "/.sbx/x"}, content=b"x", headers=user.headers
    )
    assert refused.status_code == 400, refused.text
    deleted = await client.delete(files, params={"path": "/data", "recursive": "true"}, headers=user.headers)
    assert deleted.status_code == 200, deleted.text
    gone = await client.get(f"{files}/stat", params={"path": "/data"}, headers=user.headers)
    assert gone.status_code == 404
    await destroy_all(client, user)
