"""Files through the clients: the Python SDK (sync and async: bytes, files and iterables both
ways, Range, list/stat/mkdir/move/remove, typed errors) and the `sbx files` / `sbx cp` commands."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sandbox_platform import (
    AsyncClient,
    Client,
    ConflictError,
    NotFoundError,
    PathIsADirectoryError,
    PathNotADirectoryError,
)

from tests.clients.python.support import PASSWORD, new_email
from tests.clients.python.test_cli import cli_env, ok, runner
from tests.support.platform import Platform

BOOT = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
def sdk(platform: Platform) -> Iterator[Client]:
    client = Client(base_url=platform.api_url)
    client.auth.signup(new_email(), PASSWORD)
    yield client
    for sandbox in client.sandboxes.list():
        sandbox.destroy()
    client.close()


def test_sdk_files(sdk: Client, test_image: str, tmp_path: Path) -> None:
    environment = sdk.environments.create(f"files-{uuid.uuid4().hex[:8]}", test_image, command=BOOT)
    sandbox = sdk.sandboxes.create(environment.id)
    files = sandbox.files
    assert files.write("/w/a.txt", "hello", mode=0o640).size == 5
    assert files.read("/w/a.txt") == b"hello"
    assert files.read("/w/a.txt", offset=1, length=3) == b"ell"
    assert files.stat("/w/a.txt").mode == "0640"
    # From an iterable (no length known), and from a local file; back to a local file.
    assert files.write("/w/chunks.bin", (bytes([i]) * 1000 for i in range(50))).size == 50_000
    local = tmp_path / "up.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024))
    assert files.upload(local, "/w/up.bin").size == local.stat().st_size
    assert files.download("/w/up.bin", tmp_path / "down.bin") == local.stat().st_size
    assert (tmp_path / "down.bin").read_bytes() == local.read_bytes()
    assert files.mkdir("/w/d/e", parents=True).type == "dir"
    assert [e.name for e in files.list("/w")] == ["a.txt", "chunks.bin", "d", "up.bin"]
    assert files.move("/w/a.txt", "/w/d/b.txt").path == "/w/d/b.txt"
    with pytest.raises(ConflictError):
        files.move("/w/up.bin", "/w/d/b.txt")
    with pytest.raises(PathNotADirectoryError):
        files.list("/w/up.bin")
    with pytest.raises(PathIsADirectoryError):
        files.read("/w/d")
    tar = b"".join(files.iter_archive("/w/d"))
    assert files.upload_archive("/copy", tar).entries >= 3
    assert files.read("/copy/d/b.txt") == b"hello"
    assert files.download_archive("/w/d", tmp_path / "d.tar") == len(tar)
    files.remove("/w/d", recursive=True)
    with pytest.raises(NotFoundError):
        files.stat("/w/d")
    # The sandbox sees it all from inside.
    assert sandbox.exec("ls /w").stdout.split() == ["chunks.bin", "up.bin"]


async def test_async_sdk_files(platform: Platform, test_image: str) -> None:
    async with AsyncClient(base_url=platform.api_url) as client:
        await client.auth.signup(new_email(), PASSWORD)
        environment = await client.environments.create(
            f"files-{uuid.uuid4().hex[:8]}", test_image, command=BOOT
        )
        sandbox = await client.sandboxes.create(environment.id)
        try:

            async def parts() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b"x" * 100_000

            assert (await sandbox.files.write("/a/b.bin", parts())).size == 400_000
            assert len(await sandbox.files.read("/a/b.bin")) == 400_000
            assert [e.name for e in await sandbox.files.list("/a")] == ["b.bin"]
            assert (await sandbox.files.mkdir("/a/c")).type == "dir"
            assert (await sandbox.files.move("/a/c", "/a/d")).path == "/a/d"
            await sandbox.files.remove("/a/d")
            assert (await sandbox.files.stat("/a/b.bin")).size == 400_000
        finally:
            await sandbox.destroy()


def test_cli_files_commands(platform: Platform, tmp_path: Path, test_image: str) -> None:
    sbx = runner(cli_env(platform.api_url, tmp_path))
    ok(sbx("signup", "--email", new_email(), "--password", PASSWORD))
    env_name = f"cli-files-{uuid.uuid4().hex[:6]}"
    ok(sbx("env", "create", env_name, "--image", test_image, "--command", "sh -c 'exec sleep 3600'", "-q"))
    box = ok(sbx("create", env_name, "-q")).strip()
    local = tmp_path / "in.txt"
    local.write_text("from the cli\n")
    ok(sbx("files", "put", box, str(local), "/cli/in.txt", "--mode", "0600"))
    assert ok(sbx("files", "cat", box, "/cli/in.txt")) == "from the cli\n"
    ok(sbx("files", "mkdir", box, "/cli/sub/dir", "-p"))
    ok(sbx("files", "mv", box, "/cli/in.txt", "/cli/sub/moved.txt"))
    listed = json.loads(ok(sbx("files", "ls", box, "/cli/sub", "--json")))
    assert [(e["name"], e["type"]) for e in listed] == [("dir", "dir"), ("moved.txt", "file")]
    assert "moved.txt" in ok(sbx("files", "ls", box, "/cli/sub"))
    ok(sbx("cp", str(local), f"{box}:/cli/copied.txt"))
    ok(sbx("cp", f"{box}:/cli/copied.txt", str(tmp_path / "back.txt")))
    assert (tmp_path / "back.txt").read_text() == "from the cli\n"
    ok(sbx("files", "get", box, "/cli/sub/moved.txt", str(tmp_path / "got.txt")))
    assert (tmp_path / "got.txt").read_text() == "from the cli\n"
    ok(sbx("files", "tar", box, "/cli/sub", str(tmp_path / "sub.tar")))
    assert "entries" in ok(sbx("files", "untar", box, str(tmp_path / "sub.tar"), "/restored"))
    assert ok(sbx("files", "cat", box, "/restored/sub/moved.txt")) == "from the cli\n"
    ok(sbx("files", "rm", box, "/cli/sub", "-r"))
    missing = sbx("files", "stat", box, "/cli/sub")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    ok(sbx("rm", box))
