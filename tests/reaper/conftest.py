"""Fixtures of the reaper tests: a second, quick reaper, a wire tap on commands, Docker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import docker
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sbx_common import natsconn, subjects
from sbx_common.messages import SandboxCommand
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import free_port, wait_for_port

from tests.harness import Platform

# A second reaper beside the platform's own: short grace and sweep interval so the tests do not
# wait for the defaults, and two reapers at once all the time, as a deployment may run them.
QUICK_REAPER_ENV = {
    "SBX_REAPER_SWEEP_INTERVAL_SECONDS": "0.5",
    "SBX_REAPER_ORPHAN_GRACE_SECONDS": "1",
}


@pytest.fixture(scope="module")
def quick_reaper(platform: Platform) -> Iterator[ServiceProcess]:
    port = free_port()
    env = {**platform.base_env, **QUICK_REAPER_ENV, "SBX_METRICS_PORT": str(port)}
    proc = ServiceProcess("reaper", env, log_file=platform.log_dir / "reaper-quick.log").start()
    wait_for_port(port, timeout=30)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    conn = await natsconn.connect(nats_url, "tests-reaper")
    yield conn
    await conn.close()


@dataclass
class Seen:
    command: SandboxCommand
    msg_id: str | None
    at: float  # time.time() when it went over the wire


@dataclass
class CommandTap:
    """Every command published on `sbx.cmd.sandbox.*`, seen by a core subscription.

    The orchestrator consumes the work queue, so the tap listens on the wire instead: it sees
    each publish, including duplicates that the stream then drops.
    """

    seen: list[Seen] = field(default_factory=list)

    async def on_msg(self, msg: Msg) -> None:
        command = SandboxCommand.model_validate_json(msg.data)
        self.seen.append(Seen(command, (msg.headers or {}).get("Nats-Msg-Id"), time.time()))

    def matching(self, predicate: Callable[[SandboxCommand], bool]) -> list[Seen]:
        return [s for s in self.seen if predicate(s.command)]

    async def wait(self, predicate: Callable[[SandboxCommand], bool], timeout: float = 15.0) -> Seen:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(predicate)
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching command within {timeout}s; seen: {self.seen!r}")


@pytest.fixture
async def command_tap(nc: NatsClient) -> AsyncIterator[CommandTap]:
    tap = CommandTap()
    sub = await nc.subscribe(subjects.CMD_ALL, cb=tap.on_msg)
    await nc.flush()
    yield tap
    await sub.unsubscribe()
