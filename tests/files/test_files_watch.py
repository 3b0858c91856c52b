"""`/ws/sandboxes/:id/files/watch` through the Python SDK (`sandbox.files.watch`), under runc and
gVisor: created, modified, deleted and moved (files and directories), recursive on and off, the
refusals (not a directory, missing), and the end when the sandbox stops."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sandbox_platform import (
    AsyncClient,
    Client,
    FileChange,
    NotFoundError,
    NotRunningError,
    ValidationError,
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


def until(changes: Iterator[FileChange], kind: str, path: str) -> FileChange:
    """The first change of this kind at this path; the others before it are skipped."""
    for change in changes:
        if change.type == kind and change.path == path:
            return change
    raise AssertionError(f"the watch ended before {kind} {path}")


def seen_before(changes: Iterator[FileChange], marker: str) -> list[FileChange]:
    """Every change up to the one creating `marker` (changes arrive in order)."""
    out = []
    for change in changes:
        if change.type == "created" and change.path == marker:
            return out
        out.append(change)
    raise AssertionError(f"the watch ended before {marker}")


@pytest.mark.parametrize("runtime", ["runc", "gvisor"])
def test_watch_reports_changes(sdk: Client, test_image: str, runtime: str) -> None:
    environment = sdk.environments.create(
        f"watch-{uuid.uuid4().hex[:8]}", test_image, command=BOOT, runtime=runtime
    )
    sandbox = sdk.sandboxes.create(environment.id)
    files = sandbox.files
    files.mkdir("/w/sub", parents=True)

    with files.watch("/w", recursive=True) as watch:
        changes = iter(watch)
        assert watch.path == "/w"
        sandbox.exec("echo a > /w/a.txt")
        assert until(changes, "created", "/w/a.txt").is_dir is False
        sandbox.exec("echo more >> /w/a.txt")
        until(changes, "modified", "/w/a.txt")
        sandbox.exec("mv /w/a.txt /w/b.txt")
        moved = until(changes, "moved", "/w/b.txt")
        assert (moved.from_path, moved.is_dir) == ("/w/a.txt", False)
        # Recursive: a change in an existing subdirectory, and in one made after the start.
        sandbox.exec("touch /w/sub/deep")
        until(changes, "created", "/w/sub/deep")
        sandbox.exec("mkdir /w/new && touch /w/new/inner")
        assert until(changes, "created", "/w/new").is_dir is True
        until(changes, "created", "/w/new/inner")
        sandbox.exec("mv /w/new /w/renamed")
        moved_dir = until(changes, "moved", "/w/renamed")
        assert (moved_dir.from_path, moved_dir.is_dir) == ("/w/new", True)
        sandbox.exec("touch /w/renamed/after")  # the moved directory is still watched
        until(changes, "created", "/w/renamed/after")
        sandbox.exec("rm /w/b.txt")
        until(changes, "deleted", "/w/b.txt")

    with files.watch("/w") as shallow:
        changes = iter(shallow)
        sandbox.exec("touch /w/sub/hidden && touch /w/top")
        before = seen_before(changes, "/w/top")
        assert all(c.path != "/w/sub/hidden" for c in before), before

    sandbox.destroy()


def test_watch_refusals_and_end(sdk: Client, test_image: str) -> None:
    environment = sdk.environments.create(f"watch-{uuid.uuid4().hex[:8]}", test_image, command=BOOT)
    sandbox = sdk.sandboxes.create(environment.id)
    sandbox.files.write("/w/file", "x")
    with pytest.raises(ValidationError, match="NOT_A_DIRECTORY"):
        sandbox.files.watch("/w/file")
    with pytest.raises(NotFoundError):
        sandbox.files.watch("/nowhere")
    with pytest.raises(ValidationError):
        sandbox.files.watch("relative")

    # The watched directory deleted: the watch ends normally.
    sandbox.files.mkdir("/w/gone")
    with sandbox.files.watch("/w/gone") as watch:
        sandbox.exec("rmdir /w/gone")
        assert list(watch) == []

    # The sandbox stopped: NotRunningError, to reopen once it runs.
    with sandbox.files.watch("/w") as watch:
        sandbox.stop()
        with pytest.raises(NotRunningError):
            list(watch)
    sandbox.destroy()


async def until_async(changes: AsyncIterator[FileChange], kind: str, path: str) -> FileChange:
    async for change in changes:
        if change.type == kind and change.path == path:
            return change
    raise AssertionError(f"the watch ended before {kind} {path}")


async def test_async_watch_reports_changes_and_ends(sdk: Client, test_image: str) -> None:
    """`AsyncClient`'s `files.watch`: the same changes, refusals and ends as the sync one."""
    async with AsyncClient(base_url=sdk.base_url, token=sdk.token) as client:
        environment = await client.environments.create(
            f"watch-{uuid.uuid4().hex[:8]}", test_image, command=BOOT
        )
        sandbox = await client.sandboxes.create(environment.id)
        files = sandbox.files
        await files.mkdir("/w/sub", parents=True)
        await files.write("/w/file", "x")

        async with files.watch("/w", recursive=True) as watch:
            changes = aiter(watch)
            assert watch.path == "/w"
            await sandbox.exec("echo a > /w/a.txt")
            assert (await until_async(changes, "created", "/w/a.txt")).is_dir is False
            await sandbox.exec("echo more >> /w/a.txt")
            await until_async(changes, "modified", "/w/a.txt")
            await sandbox.exec("mv /w/a.txt /w/b.txt")
            moved = await until_async(changes, "moved", "/w/b.txt")
            assert (moved.from_path, moved.is_dir) == ("/w/a.txt", False)
            await sandbox.exec("mkdir /w/new && touch /w/new/inner")
            assert (await until_async(changes, "created", "/w/new")).is_dir is True
            await until_async(changes, "created", "/w/new/inner")
            await sandbox.exec("rm /w/b.txt")
            await until_async(changes, "deleted", "/w/b.txt")

        with pytest.raises(ValidationError, match="NOT_A_DIRECTORY"):
            await files.watch("/w/file")
        with pytest.raises(NotFoundError):
            await files.watch("/nowhere")

        # The watched directory deleted: the watch ends normally.
        await files.mkdir("/w/gone")
        watch = await files.watch("/w/gone")
        await sandbox.exec("rmdir /w/gone")
        assert [change async for change in watch] == []
        await watch.close()

        # The sandbox stopped: NotRunningError, to reopen once it runs.
        async with files.watch("/w") as watch:
            await sandbox.stop()
            with pytest.raises(NotRunningError):
                _ = [change async for change in watch]
        await sandbox.destroy()


def test_cli_watch_refuses_a_file(platform: Platform, tmp_path: Path, test_image: str) -> None:
    sbx = runner(cli_env(platform.api_url, tmp_path))
    ok(sbx("signup", "--email", new_email(), "--password", PASSWORD))
    env_name = f"cli-watch-{uuid.uuid4().hex[:6]}"
    ok(sbx("env", "create", env_name, "--image", test_image, "--command", "sh -c 'exec sleep 3600'", "-q"))
    box = ok(sbx("create", env_name, "-q")).strip()
    (tmp_path / "f").write_text("x")
    ok(sbx("files", "put", box, str(tmp_path / "f"), "/f"))
    refused = sbx("files", "watch", box, "/f")
    assert refused.returncode == 1
    assert "NOT_A_DIRECTORY" in refused.stderr
    ok(sbx("rm", box))
