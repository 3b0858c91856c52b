"""The local Docker engine: the test images (built here, no registry involved), the labels of a
sandbox container, and removing what a test or a platform left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import docker
from docker.errors import NotFound
from docker.models.containers import Container
from sbx_common import labels

TEST_IMAGE = "sbx-test-busybox:latest"
IMAGES_DIR = Path(__file__).parents[1] / "images"

# Tagged per test session: a session removes its images at its end, which must not pull them
# from under another session running beside it on the same engine.
_SESSION_TAG = uuid.uuid4().hex[:10]
HEALTHCHECK_IMAGE = f"sbx-test-healthcheck:{_SESSION_TAG}"
UNHEALTHY_IMAGE = f"sbx-test-unhealthy:{_SESSION_TAG}"
# Healthy once /tmp/ready exists (the environment's command decides when); failed checks do not
# count during the first 60 s.
HEALTHCHECK_DOCKERFILE = """
FROM {base}
HEALTHCHECK --interval=1s --timeout=1s --start-period=60s --retries=1 CMD ["test", "-f", "/tmp/ready"]
"""
# Unhealthy at its first check.
UNHEALTHY_DOCKERFILE = """
FROM {base}
HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["false"]
"""


def docker_available() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def run_build(args: list[str], stdin: bytes | None = None) -> None:
    # The classic builder: BuildKit may want to pull its own front end.
    subprocess.run(
        ["docker", "build", "-q", *args],
        input=stdin,
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )


def build_test_image() -> str:
    """Build the busybox test image from the static busybox binary (no registry needed)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(IMAGES_DIR / "busybox" / "Dockerfile", Path(context) / "Dockerfile")
        shutil.copy(busybox, Path(context) / "busybox")
        run_build(["-t", TEST_IMAGE, context])
    return TEST_IMAGE


def build_image(tag: str, dockerfile: str) -> str:
    """An image built locally from a Dockerfile given as text (FROM the test image)."""
    run_build(["-t", tag, "-"], stdin=dockerfile.encode())
    return tag


def remove_image(tag: str) -> None:
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def sandbox_labels(
    instance: str, sandbox_id: object | None = None, owner_id: object | None = None
) -> dict[str, str]:
    """The labels the orchestrator puts on a sandbox container of installation `instance`."""
    found = {labels.PLATFORM: labels.PLATFORM_VALUE, labels.INSTANCE: instance}
    if sandbox_id is not None:
        found[labels.SANDBOX_ID] = str(sandbox_id)
    if owner_id is not None:
        found[labels.OWNER_ID] = str(owner_id)
    return found


def remove_containers(*selectors: str) -> None:
    """Remove every container, running or not, carrying all the labels given as `key=value`; one
    gone already, or being removed by the orchestrator right now, goes either way."""
    filters = [arg for selector in selectors for arg in ("--filter", f"label={selector}")]
    ids = subprocess.run(
        ["docker", "ps", "-aq", *filters], capture_output=True, text=True, check=False
    ).stdout.split()
    remove_containers_named(*ids)


def remove_instance_containers(instance: str) -> None:
    """Everything a platform of installation `instance` left on the engine and the host: its
    containers, its snapshot images, its sandbox network, and its firewall chains."""
    remove_containers(f"{labels.INSTANCE}={instance}")
    remove_containers(f"{labels.HOLDER_INSTANCE}={instance}")  # after the sandboxes joining them
    remove_instance_images(instance)
    remove_instance_network(instance)


def remove_instance_images(instance: str) -> None:
    """The snapshot images the orchestrator of `instance` committed. Its reaper removes those
    nothing needs, but not once the platform is stopped; called after the containers are gone
    (an image a container still uses would only lose its tag)."""
    ids = subprocess.run(
        [
            "docker",
            "images",
            "-q",
            "--filter",
            f"label={labels.INSTANCE}={instance}",
            "--filter",
            f"label={labels.SNAPSHOT_ID}",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *sorted(set(ids))], capture_output=True, check=False)


def remove_instance_network(instance: str, host_id: str = "local", docker_host: str | None = None) -> None:
    """The sandbox network the orchestrator of `instance` (on host `host_id`, whose engine is at
    `docker_host`, default the machine's) made, and its iptables chains."""
    from sbx_orchestrator.engine.firewall import Chains, bridge_name, network_name

    docker = ["docker", "-H", docker_host] if docker_host else ["docker"]
    subprocess.run([*docker, "network", "rm", network_name(instance)], capture_output=True, check=False)
    chains, bridge = Chains(instance, host_id), bridge_name(instance, host_id)

    def iptables(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=False)

    jumps = (
        ("DOCKER-USER", "-i", chains.main),
        ("INPUT", "-i", chains.input),
        ("DOCKER-USER", "-o", chains.inbound),
    )
    for chain, direction, target in jumps:
        while iptables("-D", chain, direction, bridge, "-j", target).returncode == 0:
            pass
    listing = iptables("-S").stdout.splitlines()
    names = [line.split()[1] for line in listing if line.startswith("-N ")]
    ours = [n for n in names if n == chains.main or n.startswith(chains.prefix)]
    for name in ours:
        iptables("-F", name)
    for name in ours:
        iptables("-X", name)


def remove_containers_named(*names: str) -> None:
    if names:
        subprocess.run(["docker", "rm", "-f", "-v", *names], capture_output=True, check=False)


def remove_quietly(container: Container) -> None:
    with contextlib.suppress(NotFound):
        container.remove(force=True)


def inspect_container(client: docker.DockerClient, name: str) -> dict[str, Any] | None:
    """`docker inspect` of a container, or None when there is no such container."""
    try:
        attrs: dict[str, Any] = client.api.inspect_container(name)
    except NotFound:
        return None
    return attrs


def sandbox_address(client: docker.DockerClient, sandbox_id: object, instance: str) -> str | None:
    """A sandbox container's address on its installation's network: its own, or that of the
    network holder whose namespace it joins (docs/network-holders.md). None when it has none."""
    info = inspect_container(client, labels.container_name(sandbox_id))
    if info is None:
        return None
    kind, _, holder = str(info["HostConfig"].get("NetworkMode") or "").partition(":")
    if kind == "container":
        info = inspect_container(client, holder)
        if info is None:
            return None
    network = (info["NetworkSettings"].get("Networks") or {}).get(f"sbx-{instance}") or {}
    address = network.get("IPAddress")
    return str(address) if address else None
