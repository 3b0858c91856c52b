"""`SBX_PROXY_SOURCES`: an API that is not on the host (the API container under compose) reaches
sandbox ports through the firewall, while other containers of its network do not and sandboxes
still cannot open connections to it.

A Docker network of the test's own stands for the compose network, with two containers on it:
the "API" (whose address is the orchestrator's proxy source) and a neighbour. Both serve HTTP, so
a sandbox's attempt to reach them is a real connection attempt.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.types
import pytest
from docker.models.containers import Container

from tests.support.api import create_environment, signup
from tests.support.docker import sandbox_address
from tests.support.platform import dedicated_platform
from tests.support.sandboxes import create_sandbox, exec_in
from tests.support.waiting import wait_for

SERVE = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www"


def get(address: str) -> str:
    """A shell line that GETs / from `address` port 8080 with nc (3 s to connect)."""
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 8080"


def fetch_from(container: Container, address: str) -> str | None:
    """The body `address` serves to `container`, None when it cannot connect."""
    code, output = container.exec_run(["sh", "-c", get(address)])
    text = output.decode(errors="replace")
    if code != 0 or " 200 " not in text:
        return None
    return text.split("\r\n\r\n", 1)[-1].strip()


@pytest.fixture
def compose_network(
    docker_client: docker.DockerClient, test_image: str
) -> Iterator[tuple[Container, Container]]:
    name = f"sbx-test-compose-{uuid.uuid4().hex[:8]}"
    # A subnet of its own (outside Docker's default pools, which the test platforms use up).
    subnet = f"10.213.{uuid.uuid4().int % 250 + 1}.0/24"
    pool = docker.types.IPAMPool(subnet=subnet)
    network = docker_client.networks.create(
        name, driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[pool])
    )
    started: list[Container] = []
    try:
        for role in ("api", "neighbour"):
            started.append(
                docker_client.containers.run(
                    test_image,
                    ["sh", "-c", SERVE.format(text=role)],
                    name=f"{name}-{role}",
                    network=name,
                    detach=True,
                )
            )
        for container in started:
            container.reload()
        yield started[0], started[1]
    finally:
        for container in started:
            container.remove(force=True)
        network.remove()


def address_on(container: Container, network: str) -> str:
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


async def test_the_proxy_source_reaches_sandbox_ports_and_nothing_else_changes(
    compose_network: tuple[Container, Container], tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    api_stand_in, neighbour = compose_network
    network = next(iter(api_stand_in.attrs["NetworkSettings"]["Networks"]))
    source = address_on(api_stand_in, network)
    services = ("orchestrator", "api")
    async with (
        dedicated_platform(tmp_path, services, env={"SBX_PROXY_SOURCES": f"{source}/32"}) as plat,
        plat.client() as http,
    ):
        user = await signup(http)
        env = await create_environment(
            http, user, api_stand_in.image.tags[0], command=["sh", "-c", SERVE.format(text="sandbox")]
        )
        sandbox = await create_sandbox(http, user, env["id"], "?wait=true&timeout=60")
        assert sandbox["status"] == "running", sandbox["statusReason"]
        target = sandbox_address(docker_client, sandbox["id"], plat.instance)
        assert target is not None

        # Allowed: the source (once the sandbox's httpd listens); not its neighbour.
        async def served() -> str | None:
            return await asyncio.to_thread(fetch_from, api_stand_in, target)

        assert await wait_for(served, timeout=20, what="the sandbox answers the source") == "sandbox"
        assert fetch_from(neighbour, target) is None
        # The sandbox still reaches neither of them.
        for other in (api_stand_in, neighbour):
            probe = f"{get(address_on(other, network))} | grep -q ' 200 ' && echo reached || echo refused"
            result = await exec_in(http, user, sandbox["id"], probe)
            assert result["stdout"].strip() == "refused", result
