"""The demo flow through `AsyncClient`, against the real platform."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sandbox_platform import AsyncClient, Metrics, NotRunningError, UnavailableError

from tests.clients.python.support import PASSWORD, new_email


async def _metrics(sandbox) -> Metrics:  # type: ignore[no-untyped-def]
    for _ in range(120):
        try:
            return await sandbox.metrics()
        except UnavailableError:
            await asyncio.sleep(0.5)
    raise AssertionError("no metrics sample within 60 s")


async def _until_resized(terminal, size: bytes) -> None:  # type: ignore[no-untyped-def]
    """The resize and the keys travel apart: ask again until the new size shows."""
    for _ in range(10):
        await terminal.send("stty size\n")
        try:
            await terminal.read_until(size, timeout=2)
        except TimeoutError:
            continue
        return
    raise AssertionError(f"the terminal never showed {size!r}")


async def test_async_demo_flow(api_url: str, test_image: str) -> None:
    async with AsyncClient(base_url=api_url) as client:
        email = new_email()
        user = await client.auth.signup(email, PASSWORD)
        assert (await client.auth.me()).id == user.id
        key = await client.api_keys.create("ci")
        assert key.id in [k.id async for k in client.api_keys.list()]

        environment = await client.environments.create(
            name=f"async-{uuid.uuid4().hex[:8]}",
            image=test_image,
            env={"GREETING": "hello"},
            command=["sh", "-c", "echo booted $GREETING; while true; do sleep 3600; done"],
            disk=256,
        )
        assert (environment.disk, environment.runtime) == (256, "runc")
        assert "runc" in (await client.info()).runtimes
        assert environment.id in [e.id async for e in client.environments.list()]
        await client.environments.set_secret(environment.id, "API_KEY", "super-secret-value")

        async with client.sandboxes.create(environment.id) as sandbox:
            assert sandbox.status == "running"
            assert (sandbox.disk, sandbox.runtime) == (256, "runc")
            assert sandbox.id in [s.id async for s in client.sandboxes.list()]
            result = await sandbox.exec("echo $API_KEY; exit 4")
            assert (result.exit_code, result.stdout) == (4, "super-secret-value\n")

            async with sandbox.stream_logs(since=0) as lines:
                first = await lines.__anext__()
            assert (first.seq, first.text) == (1, "booted hello")
            assert [line.text for line in await sandbox.logs(tail=1)] == ["booted hello"]

            async with sandbox.terminal(cols=90, rows=20) as terminal:
                await terminal.send("echo hi\n")
                await terminal.read_until(b"\nhi\r\n", timeout=15)
                await terminal.resize(100, 33)
                await _until_resized(terminal, b"33 100")

            metrics = await _metrics(sandbox)
            assert metrics.memory.limit_bytes == 256 * 1024 * 1024

            assert (await sandbox.stop()).status == "stopped"
            with pytest.raises(NotRunningError):
                await sandbox.exec("true")
            with pytest.raises(NotRunningError):
                await sandbox.terminal()
            assert (await sandbox.start()).status == "running"
            assert (await sandbox.restart()).status == "running"

            replica = await sandbox.replicate(name=f"copy-{uuid.uuid4().hex[:6]}")
            assert replica.environment_version == sandbox.environment_version
            assert (await replica.exec("echo $GREETING")).stdout == "hello\n"
            assert (await replica.destroy()).status == "destroyed"
        assert sandbox.status == "destroyed"
        assert (await client.sandboxes.get(sandbox.id)).status == "destroyed"

        statuses = []
        async with sandbox.events() as events:
            async for event in events:
                statuses.append(event.status)
                if event.status == "destroyed":
                    break
        assert statuses.count("running") >= 3
        assert statuses[-1] == "destroyed"
