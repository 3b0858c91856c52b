"""A real Docker engine restart: sandboxes come back with their files, paused ones paused, and a
container that did not come back is reported with its real status.

Never the shared engine: a private dockerd of this test's own (its own data and exec roots,
socket, pid file, empty config and a Linux bridge made for it; `--iptables=false`, so it adds no
rules to the host's tables), with a platform of its own (NATS, PostgreSQL, API, orchestrator)
pointed at it. The orchestrator's sandbox firewall is off there: it installs host iptables rules
for the engine it runs against, which this engine does not make. It runs once (slow: two engine
starts and a stop that waits out a paused container's stop timeout).
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from sbx_common.labels import container_name

from tests.support.api import create_environment, signup
from tests.support.docker import TEST_IMAGE
from tests.support.platform import DedicatedPlatform, dedicated_platform
from tests.support.sandboxes import create_sandbox, exec_in, get_sandbox, lifecycle
from tests.support.waiting import wait_for

# Needs root and Debian's dockerd (`.ci/run` installs it): without them the test fails, not skips.
pytestmark = pytest.mark.docker


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 172.16.0.0/12 that no interface or route of this host uses."""
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    used += subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    taken = [
        ipaddress.ip_network(word, strict=False) for word in used.split() if "/" in word and word[0].isdigit()
    ]
    # From the top of the range down: Docker hands out its /16 pools from 172.17 upwards.
    for second in range(31, 15, -1):
        for third in range(250, 10, -1):
            candidate = ipaddress.ip_network(f"172.{second}.{third}.0/24")
            if not any(candidate.overlaps(net) for net in taken):
                return candidate
    raise RuntimeError("no free subnet in 172.16.0.0/12")


class PrivateEngine:
    """A dockerd of its own on a bridge of its own; `stop()` and `start()` restart it."""

    def __init__(self, root: Path, bridge: str) -> None:
        self.root = root
        self.bridge = bridge
        self.socket = f"unix://{root}/docker.sock"
        self.process: subprocess.Popen[bytes] | None = None
        (root / "daemon.json").write_text("{}")

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "-p",
                str(self.root / "docker.pid"),
                "-H",
                self.socket,
                "--config-file",
                str(self.root / "daemon.json"),
                "--bridge",
                self.bridge,
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = self.client()

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd ended: {(self.root / 'dockerd.log').read_text()[-2000:]}")
            with contextlib.suppress(Exception):
                return bool(client.ping())
            return False

        _poll(answers, timeout=60, what="the private dockerd to answer")
        client.close()

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it, and wait until it is gone."""
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=90)
        self.process = None

    def client(self) -> docker.DockerClient:
        # A fixed API version: the client then asks nothing of an engine that is not up yet.
        return docker.DockerClient(base_url=self.socket, timeout=60, version="1.41")


def _poll(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def engine(test_image: str, tmp_path: Path) -> Iterator[PrivateEngine]:
    # Short: the engine's containerd puts a unix socket under the exec root (108 bytes at most).
    root = Path(tempfile.mkdtemp(prefix="sbxe-", dir="/tmp"))
    bridge = f"sbxr{uuid.uuid4().hex[:8]}"
    subnet = _free_subnet()
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    private = PrivateEngine(root, bridge)
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet[1]}/{subnet.prefixlen}", "dev", bridge], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        private.start()
        save = subprocess.Popen(["docker", "save", test_image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", private.socket, "load"], stdin=save.stdout, check=True, capture_output=True
        )
        assert save.wait() == 0
        yield private
    finally:
        if private.process is not None:
            with contextlib.suppress(Exception):
                client = private.client()
                for container in client.containers.list(all=True):
                    container.remove(force=True)
                client.networks.prune()
                client.close()
        private.stop()
        with contextlib.suppress(OSError):  # kept with the test's other logs
            shutil.copy(root / "dockerd.log", tmp_path / "dockerd.log")
        subprocess.run(["ip", "link", "del", bridge], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def platform_on_engine(engine: PrivateEngine, tmp_path: Path) -> AsyncIterator[DedicatedPlatform]:
    env = {"DOCKER_HOST": engine.socket, "SBX_DOCKER_HOST": engine.socket, "SBX_SANDBOX_FIREWALL": "false"}
    async with dedicated_platform(tmp_path / "platform", ("api", "orchestrator"), env=env) as plat:
        yield plat


async def test_sandboxes_survive_an_engine_restart(
    engine: PrivateEngine, platform_on_engine: DedicatedPlatform
) -> None:
    async with platform_on_engine.client() as client:
        user = await signup(client)
        environment = await create_environment(
            client, user, TEST_IMAGE, cpu=0.5, memory=64, command=["sh", "-c", "exec sleep 36000"]
        )

        async def running_with_file(content: str) -> str:
            sandbox = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=60")
            assert sandbox["status"] == "running", sandbox
            written = await exec_in(
                client, user, sandbox["id"], f"mkdir -p /data && echo {content} > /data/f"
            )
            assert written["exitCode"] == 0, written
            return str(sandbox["id"])

        running, paused, lost = [await running_with_file(name) for name in ("run", "pause", "lost")]
        assert (await lifecycle(client, user, paused, "pause"))["status"] == "paused"
        docker_client = engine.client()
        lost_id = docker_client.containers.get(container_name(lost)).id
        docker_client.close()

        # The engine stops (its containers with it); one container's record is lost meanwhile.
        engine.stop()
        shutil.rmtree(engine.root / "data" / "containers" / lost_id)
        engine.start()

        async def status_of(sid: str, wanted: str) -> dict[str, Any] | None:
            sandbox = await get_sandbox(client, user, sid)
            return sandbox if sandbox["status"] == wanted else None

        async def back_running() -> dict[str, Any] | None:
            sandbox = await status_of(running, "running")
            inspect = engine.client().api.inspect_container(container_name(running))
            return sandbox if sandbox and inspect["State"]["Running"] and inspect["State"]["Pid"] else None

        await wait_for(back_running, timeout=90, interval=0.5)
        assert (await exec_in(client, user, running, "cat /data/f"))["stdout"] == "run\n"

        # The paused one is paused again (its files kept; its processes started anew).
        await wait_for(lambda: status_of(paused, "paused"), timeout=30, interval=0.5)

        def frozen() -> bool:
            state = engine.client().api.inspect_container(container_name(paused))["State"]
            return bool(state["Paused"])

        _poll(frozen, timeout=30, what="the paused sandbox's container to be paused again")
        assert (await lifecycle(client, user, paused, "resume"))["status"] == "running"
        assert (await exec_in(client, user, paused, "cat /data/f"))["stdout"] == "pause\n"

        # The container that did not come back: reported as it is, never `running`.
        gone = await wait_for(lambda: status_of(lost, "failed"), timeout=30, interval=0.5)
        assert gone["statusReason"] == "the container was removed outside the platform"
        log = platform_on_engine.platform.logs("orchestrator")
        assert "sandbox restored after an engine restart" in log

        # Everything ends cleanly on the private engine too.
        for sid in (running, paused, lost):
            ended = await client.delete(f"/sandboxes/{sid}?wait=true&timeout=60", headers=user.headers)
            assert ended.status_code in (200, 202), ended.text
