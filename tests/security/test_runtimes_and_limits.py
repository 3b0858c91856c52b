"""Runtimes and limits: gVisor sandboxes, `GET /info`, the `disk` limit, block I/O weight and
ulimits, registries refused, and the bounded, scoped redaction of secret values.

The gVisor tests need Debian's `runsc` registered with the Docker engine as runtime `runsc`
(`infra/docker/register-runsc.sh`): without it they fail, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from sbx_api.environments.registries import parse_allowed, refused_registry
from sbx_common.logging import JsonFormatter, SecretRedactor, register_secret, scoped_redaction
from sbx_orchestrator.engine.disk_watcher import WalkTooLong, used_bytes

from tests.streams.clients import open_terminal, terminal_url
from tests.support.api import User, create_environment, data_of, error_paths
from tests.support.platform import Platform, extra_api
from tests.support.sandboxes import create_sandbox, destroy_all, exec_in, get_sandbox
from tests.support.waiting import wait_for

REGISTER_HINT = "runsc is not registered with the Docker engine: run infra/docker/register-runsc.sh"


@pytest.fixture
async def owner(client: httpx.AsyncClient, user: User) -> AsyncIterator[User]:
    """The test's user; whatever sandboxes it made are destroyed at the end."""
    yield user
    await destroy_all(client, user)


def engine_runtimes(docker_client: docker.DockerClient) -> set[str]:
    return set((docker_client.info().get("Runtimes") or {}).keys())


async def running_sandbox(
    client: httpx.AsyncClient, user: User, image: str, script: str = "sleep 600", **fields: Any
) -> dict[str, Any]:
    env = await create_environment(
        client, user, image, cpu=0.5, memory=128, command=["sh", "-c", script], **fields
    )
    sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=90")
    assert sandbox["status"] == "running", sandbox
    return sandbox


def host_config(docker_client: docker.DockerClient, sandbox_id: str) -> dict[str, Any]:
    config: dict[str, Any] = docker_client.api.inspect_container(f"sbx-{sandbox_id}")["HostConfig"]
    return config


# --- GET /info and gVisor ------------------------------------------------------------------------


async def test_info_lists_the_engines_runtimes(
    client: httpx.AsyncClient, docker_client: docker.DockerClient
) -> None:
    assert "runsc" in engine_runtimes(docker_client), REGISTER_HINT
    info = data_of(await client.get("/info"))  # no credentials needed
    assert info["runtimes"][0] == "runc"
    assert "gvisor" in info["runtimes"]
    assert isinstance(info["version"], str)
    assert info["version"]
    assert "environment.runtime" in info["features"]
    assert info["limits"]["defaultDiskMib"] == 2048
    assert info["limits"]["minDiskMib"] == 64
    assert info["diskLimit"] == "watch"  # overlay2 on ext4 here: the orchestrator watches


async def test_gvisor_sandbox_runs_exec_terminal_logs_and_metrics(
    platform: Platform,
    client: httpx.AsyncClient,
    owner: User,
    test_image: str,
    docker_client: docker.DockerClient,
) -> None:
    assert "runsc" in engine_runtimes(docker_client), REGISTER_HINT
    env = await create_environment(
        client,
        owner,
        test_image,
        runtime="gvisor",
        disk=64,
        command=["sh", "-c", "echo hello-from-gvisor; sleep 600"],
    )
    assert env["runtime"] == "gvisor"
    versions = data_of(await client.get(f"/environments/{env['id']}/versions", headers=owner.headers))
    assert versions[0]["runtime"] == "gvisor"
    sandbox = await create_sandbox(client, owner, env["id"], "?wait=true&timeout=90")
    assert sandbox["status"] == "running", sandbox
    assert sandbox["runtime"] == "gvisor"
    assert host_config(docker_client, sandbox["id"])["Runtime"] == "runsc"

    # Exec, and the kernel really is gVisor's.
    dmesg = await exec_in(client, owner, sandbox["id"], "dmesg")
    assert dmesg["exitCode"] == 0
    assert dmesg["stdout"].lstrip().split("\n")[0].endswith("Starting gVisor..."), dmesg["stdout"][:200]
    listed = await exec_in(client, owner, sandbox["id"], ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (listed["exitCode"], listed["stdout"], listed["stderr"]) == (3, "out\n", "err\n")
    # A timed-out exec is killed with its descendants (found inside: the host PID is runsc's).
    slow = await exec_in(client, owner, sandbox["id"], "sleep 77 & sleep 78", timeoutSeconds=1)
    assert slow["timedOut"] is True

    async def slow_gone() -> bool:
        listing = (await exec_in(client, owner, sandbox["id"], "ps"))["stdout"]
        return "sleep 77" not in listing and "sleep 78" not in listing

    await wait_for(slow_gone, timeout=15, interval=0.5, what="the timed-out exec's processes killed")

    # A terminal.
    async with open_terminal(terminal_url(platform.ws_url, owner, sandbox["id"])) as term:
        await term.type("echo hi-$((40 + 2))\n")
        await term.expect("hi-42")
        await term.type("exit\n")
        assert await term.closed() == 1000
    # Leaving a terminal with a program still running ends it (the shell is hung up).
    async with open_terminal(terminal_url(platform.ws_url, owner, sandbox["id"])) as term:
        await term.type("sleep 4321\n")

        async def sleeping() -> bool:
            return "sleep 4321" in (await exec_in(client, owner, sandbox["id"], "ps"))["stdout"]

        await wait_for(sleeping, timeout=15, interval=0.3, what="the terminal's program running")

    async def hung_up() -> bool:
        return "sleep 4321" not in (await exec_in(client, owner, sandbox["id"], "ps"))["stdout"]

    await wait_for(hung_up, timeout=15, interval=0.5, what="the terminal's program ended")

    # Logs.
    async def logged() -> list[str]:
        response = await client.get(f"/sandboxes/{sandbox['id']}/logs", headers=owner.headers)
        return [line["text"] for line in data_of(response) if line["text"] == "hello-from-gvisor"]

    await wait_for(logged, timeout=30, what="the sandbox's log line")

    # Metrics (read from the container's cgroup, which runsc's sandbox process lives in).
    async def sampled() -> dict[str, Any] | None:
        response = await client.get(f"/sandboxes/{sandbox['id']}/metrics", headers=owner.headers)
        if response.status_code != 200:
            return None
        metrics: dict[str, Any] = response.json()["data"]
        return metrics if metrics["memory"]["usageBytes"] > 0 and metrics["pids"] > 0 else None

    metrics = await wait_for(sampled, timeout=30, interval=0.5, what="a metrics sample")
    assert metrics["memory"]["limitBytes"] == 256 * 1024 * 1024

    # The disk limit holds under gVisor too (its writes land in the same writable layer). The
    # exec may end any way once the sandbox is stopped under it.
    await client.post(
        f"/sandboxes/{sandbox['id']}/exec",
        json={"command": "dd if=/dev/zero of=/fill bs=1M count=100; sync"},
        headers=owner.headers,
    )

    async def stopped() -> dict[str, Any] | None:
        found = await get_sandbox(client, owner, sandbox["id"])
        return found if found["status"] == "stopped" else None

    over = await wait_for(stopped, timeout=30, interval=0.2, what="the gVisor sandbox stopped over its disk")
    assert over["statusReason"] == "disk quota exceeded"


async def test_unknown_runtime_and_bad_disk_are_400_and_change_nothing(
    client: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    base = {"name": "runtime-check", "image": test_image}
    for body, field in (
        ({**base, "runtime": "kata"}, "runtime"),
        ({**base, "runtime": ""}, "runtime"),
        ({**base, "runtime": 1}, "runtime"),
        ({**base, "disk": 63}, "disk"),
        ({**base, "disk": 102401}, "disk"),
        ({**base, "disk": "2048"}, "disk"),
    ):
        response = await client.post("/environments", json=body, headers=owner.headers)
        assert error_paths(response) == [field], body
    assert data_of(await client.get("/environments", headers=owner.headers)) == []

    env = await create_environment(client, owner, test_image)
    assert (env["runtime"], env["disk"]) == ("runc", 2048)
    url = f"/environments/{env['id']}"
    for body, field in (
        ({"runtime": "kata"}, "runtime"),
        ({"disk": 10}, "disk"),
        ({"runtime": None}, "runtime"),
    ):
        assert error_paths(await client.put(url, json=body, headers=owner.headers)) == [field], body
    assert data_of(await client.get(url, headers=owner.headers))["version"] == 1
    updated = data_of(await client.put(url, json={"disk": 512}, headers=owner.headers))
    assert (updated["version"], updated["runtime"], updated["disk"]) == (2, "runc", 512)


# --- registries ----------------------------------------------------------------------------------

REFUSED_IMAGES = [
    "127.0.0.1:5000/x",
    "localhost:5000/x",
    "localhost/x",
    "10.0.0.5/x",
    "192.168.1.20:443/team/app:1",
    "169.254.169.254/x",
    "registry.internal:5000/x",
    "registry:5000/x",
    "[::1]:5000/x",
]


def test_registry_rule() -> None:
    for image in REFUSED_IMAGES:
        assert refused_registry(image, frozenset()) is not None, image
    for image in (
        "sbx-test-busybox:latest",
        "alpine:3.20",
        "library/alpine",
        "ghcr.io/org/app:1",
        "quay.io/x/y",
    ):
        assert refused_registry(image, frozenset()) is None, image
    allowed = parse_allowed(" localhost:5000 , 10.0.0.5")
    assert refused_registry("localhost:5000/x", allowed) is None
    assert refused_registry("10.0.0.5:8443/x", allowed) is None  # a host allowed on any port
    assert refused_registry("localhost:5001/x", allowed) == "localhost:5001"


async def test_private_registries_are_refused_unless_allowed(
    platform: Platform, client: httpx.AsyncClient, owner: User, test_image: str, tmp_path: Path
) -> None:
    for image in REFUSED_IMAGES:
        response = await client.post(
            "/environments", json={"name": "reg", "image": image}, headers=owner.headers
        )
        assert error_paths(response) == ["image"], image
    env = await create_environment(client, owner, "alpine:3.20")
    url = f"/environments/{env['id']}"
    assert error_paths(await client.put(url, json={"image": "10.1.2.3:5000/x"}, headers=owner.headers)) == [
        "image"
    ]
    assert data_of(await client.get(url, headers=owner.headers))["version"] == 1

    async with extra_api(platform, tmp_path, SBX_ALLOWED_REGISTRIES="localhost:5000") as allowing:
        created = await allowing.post(
            "/environments",
            json={"name": "allowed", "image": "localhost:5000/team/app:1"},
            headers=owner.headers,
        )
        assert data_of(created, 201)["image"] == "localhost:5000/team/app:1"
        refused = await allowing.post(
            "/environments", json={"name": "other", "image": "localhost:5001/x"}, headers=owner.headers
        )
        assert error_paths(refused) == ["image"]


# --- disk, block I/O, ulimits ---------------------------------------------------------------------


async def test_writing_past_disk_stops_the_sandbox_and_the_platform_stays_up(
    client: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    filler = await running_sandbox(client, owner, test_image, disk=64)
    bystander = await running_sandbox(client, owner, test_image)
    assert filler["disk"] == 64

    started = time.monotonic()
    # 128 MiB into a 64 MiB disk. The exec may end any way once the sandbox is stopped under it.
    writing = asyncio.create_task(
        client.post(
            f"/sandboxes/{filler['id']}/exec",
            json={
                "command": "dd if=/dev/zero of=/fill bs=1M count=128; sync; sleep 60",
                "timeoutSeconds": 90,
            },
            headers=owner.headers,
        )
    )

    async def stopped() -> dict[str, Any] | None:
        sandbox = await get_sandbox(client, owner, filler["id"])
        return sandbox if sandbox["status"] == "stopped" else None

    try:
        sandbox = await wait_for(stopped, timeout=60, interval=0.2, what="the over-quota sandbox stopped")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writing, timeout=30)
    elapsed = time.monotonic() - started
    logging.getLogger(__name__).warning("disk quota: sandbox stopped %.1f s after the write began", elapsed)
    assert sandbox["statusReason"] == "disk quota exceeded"
    assert elapsed < 10, f"stopped after {elapsed:.1f} s"

    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    result = await exec_in(client, owner, bystander["id"], "echo still-here")
    assert result["stdout"] == "still-here\n"


async def test_ulimits_and_block_io_weight_are_set_on_every_container(
    platform: Platform,
    client: httpx.AsyncClient,
    owner: User,
    test_image: str,
    docker_client: docker.DockerClient,
) -> None:
    sandbox = await running_sandbox(client, owner, test_image)
    config = host_config(docker_client, sandbox["id"])
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in config["Ulimits"]}
    assert ulimits == {"nofile": (4096, 8192), "nproc": (2048, 2048)}
    shown = await exec_in(client, owner, sandbox["id"], "ulimit -n; ulimit -Hn")
    assert shown["stdout"].split() == ["4096", "8192"]
    # Docker keeps the weight only where the kernel has a weight controller for block I/O
    # (cgroup v1 `blkio.weight`, or v2 `io.weight`); otherwise the orchestrator says so once.
    cgroup = Path("/sys/fs/cgroup")
    supported = (cgroup / "blkio" / "blkio.weight").exists() or (cgroup / "io.weight").exists()
    if supported:
        assert config["BlkioWeight"] == 500
    else:
        assert config["BlkioWeight"] == 0

        async def said_so() -> bool:  # the log line may still be on its way to the file
            return "block I/O weight is not supported" in platform.logs("orchestrator")

        await wait_for(said_so, timeout=30, what="the orchestrator's note on block I/O weight")


# --- the walk that measures a writable layer ------------------------------------------------------


def test_used_bytes_stops_at_the_limit_and_bounds_its_walk(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big").write_bytes(b"x" * 300_000)
    (tmp_path / "small").write_bytes(b"y" * 5_000)
    total = used_bytes(str(tmp_path), limit=10**9, max_entries=100)
    assert 305_000 <= total < 400_000
    assert used_bytes(str(tmp_path), limit=1000, max_entries=100) > 1000
    for i in range(50):
        (tmp_path / f"f{i}").touch()
    with pytest.raises(WalkTooLong):
        used_bytes(str(tmp_path), limit=10**9, max_entries=20)
    with pytest.raises(FileNotFoundError):
        used_bytes(str(tmp_path / "missing"), limit=1, max_entries=10)


# --- redaction -----------------------------------------------------------------------------------


def format_record(message: str) -> str:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, None, None)
    return JsonFormatter("test").format(record)


def test_redaction_is_scoped_to_its_sandbox_and_needs_a_minimum_length() -> None:
    register_secret("hunter2-very-secret", "sandbox-a")
    register_secret("the", "sandbox-b")  # too short to be kept: no tenant blanks common words
    with scoped_redaction("sandbox-a"):
        assert "hunter2-very-secret" not in format_record("got hunter2-very-secret from the env")
        assert "from the env" in format_record("got hunter2-very-secret from the env")
    with scoped_redaction("sandbox-b"):
        assert "[REDACTED]" not in format_record("the word hunter2-very-secret stays in b's records")
    assert "hunter2-very-secret" in format_record("and in records of no sandbox: hunter2-very-secret")


def test_redaction_memory_is_bounded_and_evicts_the_oldest() -> None:
    redactor = SecretRedactor(min_length=8, max_values=100, max_bytes=4000)
    for i in range(1000):
        assert redactor.register(f"s{i % 7}", f"value-{i:06d}")
    assert len(redactor) == 100
    assert redactor.size_bytes == 100 * len("value-000000")
    assert redactor.redact("value-000999", "s5") == "[REDACTED]"  # 999 % 7 == 5: kept (newest)
    assert redactor.redact("value-000000", "s0") == "value-000000"  # evicted (oldest)

    # Big values are bounded by bytes: each 1,000 bytes, at most four fit.
    for i in range(10):
        redactor.register("big", f"{i}" * 1000)
    assert redactor.size_bytes <= 4000
    assert redactor.redact("9" * 1000, "big") == "[REDACTED]"
    assert not redactor.register("big", "z" * 5000)  # larger than the whole budget: not kept
    assert not redactor.register("big", "short")
    redactor.forget("big")
    assert redactor.redact("9" * 1000, "big") == "9" * 1000
    assert redactor.values("big") == []
