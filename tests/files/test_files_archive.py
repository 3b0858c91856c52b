"""Archives of a sandbox's files: a tar of a file or tree out, a tar extracted in, on running,
paused and stopped sandboxes; every way out of the directory refused with nothing written."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.files.test_files import new_sandbox
from tests.support.api import User, data_of, error_of, signup
from tests.support.sandboxes import destroy_all, exec_in, lifecycle


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> AsyncIterator[User]:
    user = await signup(client)
    yield user
    await destroy_all(client, user)


def make_tar(*members: tuple[str, str, bytes | str]) -> bytes:
    """(kind, name, data-or-link) members: kind "file", "dir", "sym" or "hard"."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(value, bytes)
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.mode = 0o755 if kind == "dir" else 0o777
            info.linkname = str(value)
            tar.addfile(info)
    return out.getvalue()


def names_in(data: bytes) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            source = tar.extractfile(info) if info.isfile() else None
            found[info.name] = source.read() if source else None
    return found


async def put_tar(client: httpx.AsyncClient, user: User, sid: str, path: str, body: bytes) -> httpx.Response:
    return await client.put(
        f"/sandboxes/{sid}/files/archive", params={"path": path}, content=body, headers=user.headers
    )


async def round_trip(client: httpx.AsyncClient, user: User, sid: str, tag: str) -> None:
    body = make_tar(
        ("dir", "proj", ""),
        ("file", "proj/a.txt", b"alpha"),
        ("dir", "proj/sub", ""),
        ("file", "proj/sub/b.bin", bytes(range(256)) * 100),
        ("sym", "proj/link", "a.txt"),
    )
    made = data_of(await put_tar(client, user, sid, f"/arch/{tag}", body), 201)
    assert made == {"path": f"/arch/{tag}", "entries": 5}
    response = await client.get(
        f"/sandboxes/{sid}/files/archive", params={"path": f"/arch/{tag}/proj"}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-tar"
    got = names_in(response.content)
    assert got["proj/a.txt"] == b"alpha"
    assert got["proj/sub/b.bin"] == bytes(range(256)) * 100
    assert "proj/link" in got
    single = await client.get(
        f"/sandboxes/{sid}/files/archive", params={"path": f"/arch/{tag}/proj/a.txt"}, headers=user.headers
    )
    assert names_in(single.content) == {"a.txt": b"alpha"}
    error_of(
        await client.get(f"/sandboxes/{sid}/files/archive", params={"path": "/nope"}, headers=user.headers),
        404,
        "NOT_FOUND",
    )


async def test_archive_round_trip_running_paused_stopped(
    client: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    await round_trip(client, owner, sid, "running")
    listing = await exec_in(client, owner, sid, "cat /arch/running/proj/link; ls /arch/running/proj/sub")
    assert listing["stdout"] == "alphab.bin\n"
    await lifecycle(client, owner, sid, "pause")
    await round_trip(client, owner, sid, "paused")
    await lifecycle(client, owner, sid, "stop")
    await round_trip(client, owner, sid, "stopped")
    await lifecycle(client, owner, sid, "start")
    seen = await exec_in(
        client, owner, sid, "cat /arch/paused/proj/a.txt /arch/stopped/proj/sub/b.bin | wc -c"
    )
    assert seen["stdout"].strip() == str(5 + 25600)


ESCAPES = {
    "dot-dot": make_tar(("file", "ok.txt", b"x"), ("file", "../escaped.txt", b"x")),
    "absolute": make_tar(("file", "ok.txt", b"x"), ("file", "/escaped.txt", b"x")),
    "symlink-out": make_tar(("file", "ok.txt", b"x"), ("sym", "out", "../../etc")),
    "symlink-absolute": make_tar(("file", "ok.txt", b"x"), ("sym", "out", "/etc")),
    "through-symlink": make_tar(("file", "ok.txt", b"x"), ("sym", "in", "."), ("file", "in/x.txt", b"x")),
    "hardlink-out": make_tar(("file", "ok.txt", b"x"), ("hard", "h", "/etc/passwd")),
    "not-a-tar": b"this is not a tar archive" * 100,
}


@pytest.mark.parametrize("state", ["running", "stopped"])
async def test_archive_escapes_are_refused_with_nothing_written(
    client: httpx.AsyncClient, owner: User, test_image: str, state: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    prepared = await exec_in(client, owner, sid, "mkdir -p /dest && ln -s /etc /dest/etc-link")
    assert prepared["exitCode"] == 0
    if state == "stopped":
        await lifecycle(client, owner, sid, "stop")
    for name, body in ESCAPES.items():
        error_of(await put_tar(client, owner, sid, "/dest", body), 400, "VALIDATION_ERROR")
        assert name
    # A symlink already in the sandbox is not followed out of the directory either.
    through_existing = make_tar(("file", "ok.txt", b"x"), ("file", "etc-link/planted", b"x"))
    error_of(await put_tar(client, owner, sid, "/dest", through_existing), 400, "VALIDATION_ERROR")
    listing = data_of(
        await client.get(f"/sandboxes/{sid}/files", params={"path": "/dest"}, headers=owner.headers)
    )
    assert [e["name"] for e in listing] == ["etc-link"]
    error_of(
        await put_tar(client, owner, sid, "/dest/etc-link/../../.sbx", make_tar()), 400, "VALIDATION_ERROR"
    )
    data_of(
        await client.put(
            f"/sandboxes/{sid}/files/content", params={"path": "/file"}, content=b"x", headers=owner.headers
        ),
        201,
    )
    error_of(
        await put_tar(client, owner, sid, "/file", make_tar(("file", "a", b"x"))), 409, "NOT_A_DIRECTORY"
    )
