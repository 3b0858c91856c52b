"""Exec through the in-sandbox agent (docs/agent.md): on busybox, on an image with no shell, under
gVisor with egress `none`; the agent's volume is mounted read-only and it listens on no TCP or UDP
socket."""

from __future__ import annotations

from typing import Any

import docker
import httpx

from tests.support.api import User, create_environment
from tests.support.sandboxes import create_sandbox, destroy_all, exec_in

# /proc/net files whose entries are IP sockets: an agent socket must appear in none of them.
IP_SOCKET_TABLES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")


async def running_sandbox(client: httpx.AsyncClient, user: User, image: str, **fields: Any) -> dict[str, Any]:
    env = await create_environment(client, user, image, cpu=0.5, memory=64, **fields)
    sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=90")
    assert sandbox["status"] == "running", (sandbox["status"], sandbox.get("statusReason"))
    return sandbox


def container_of(docker_client: docker.DockerClient, sandbox: dict[str, Any]) -> Any:
    return docker_client.containers.get(f"sbx-{sandbox['id']}")


def assert_agent_mounted(docker_client: docker.DockerClient, sandbox: dict[str, Any]) -> None:
    """The container mounts the agent's named volume read-only at /.sbx and is labelled with it."""
    container = container_of(docker_client, sandbox)
    digest = container.labels.get("sbx.agent")
    assert digest, container.labels
    assert len(digest) == 12, container.labels
    mounts = [m for m in container.attrs["Mounts"] if m["Destination"] == "/.sbx"]
    assert len(mounts) == 1, container.attrs["Mounts"]
    assert (mounts[0]["Type"], mounts[0]["Name"], mounts[0]["RW"]) == ("volume", f"sbx-agent-{digest}", False)


def agent_sockets(docker_client: docker.DockerClient, sandbox: dict[str, Any]) -> tuple[set[str], str]:
    """The socket inodes the agent daemon holds, and the text of the container's IP socket
    tables, read with a plain docker exec of the agent's own binary-free tools (busybox)."""
    container = container_of(docker_client, sandbox)
    script = (
        "for p in /proc/[0-9]*; do"
        ' case "$(cat $p/cmdline 2>/dev/null | tr "\\0" " ")" in'
        ' "/.sbx/sbx-agent serve"*) ls -l $p/fd/ ;; esac; done;'
        " echo ===; cat " + " ".join(f"/proc/net/{t}" for t in IP_SOCKET_TABLES) + " 2>/dev/null; true"
    )
    output = container.exec_run(["sh", "-c", script]).output.decode()
    fds, _, tables = output.partition("===")
    inodes = {part.split("[", 1)[1].rstrip("]") for part in fds.split() if part.startswith("socket:[")}
    return inodes, tables


async def test_exec_goes_through_the_agent_which_listens_on_no_ip_socket(
    client: httpx.AsyncClient, user: User, test_image: str, docker_client: docker.DockerClient
) -> None:
    sandbox = await running_sandbox(client, user, test_image)
    assert_agent_mounted(docker_client, sandbox)

    result = await exec_in(client, user, sandbox["id"], ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result["exitCode"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    env = await exec_in(
        client, user, sandbox["id"], 'echo "$COLOUR"; pwd', env={"COLOUR": "teal"}, workdir="/bin"
    )
    assert (env["exitCode"], env["stdout"]) == (0, "teal\n/bin\n")
    # The agent daemon runs in the sandbox, with its abstract socket and nothing else.
    listing = await exec_in(client, user, sandbox["id"], "ps -o args; cat /proc/net/unix")
    assert "/.sbx/sbx-agent serve" in listing["stdout"], listing["stdout"]
    assert "@sbx-agent" in listing["stdout"], listing["stdout"]
    inodes, tables = agent_sockets(docker_client, sandbox)
    assert inodes, "the agent daemon holds its listening socket"
    for inode in inodes:
        assert f" {inode} " not in tables, f"agent socket {inode} is an IP socket:\n{tables}"
    # The binary cannot be changed from inside: its volume is read-only.
    written = await exec_in(client, user, sandbox["id"], "echo x > /.sbx/sbx-agent")
    assert written["exitCode"] != 0
    await destroy_all(client, user)


async def test_exec_works_in_an_image_without_a_shell(
    client: httpx.AsyncClient, user: User, no_shell_image: str, docker_client: docker.DockerClient
) -> None:
    sandbox = await running_sandbox(client, user, no_shell_image)
    assert_agent_mounted(docker_client, sandbox)
    result = await exec_in(client, user, sandbox["id"], ["/opt/busybox", "echo", "no shell here"])
    assert (result["exitCode"], result["stdout"]) == (0, "no shell here\n")
    missing = await exec_in(client, user, sandbox["id"], "echo hi")  # sh -c: there is no sh
    assert missing["exitCode"] == 127, missing
    slow = await exec_in(client, user, sandbox["id"], ["/opt/busybox", "sleep", "30"], timeoutSeconds=1)
    assert slow["timedOut"] is True
    await destroy_all(client, user)


async def test_exec_through_the_agent_under_gvisor_without_egress(
    client: httpx.AsyncClient, user: User, test_image: str, docker_client: docker.DockerClient
) -> None:
    sandbox = await running_sandbox(client, user, test_image, runtime="gvisor", network={"egress": "none"})
    assert container_of(docker_client, sandbox).attrs["HostConfig"]["Runtime"] == "runsc"
    assert_agent_mounted(docker_client, sandbox)
    dmesg = await exec_in(client, user, sandbox["id"], "dmesg | head -1")
    assert "gVisor" in dmesg["stdout"], dmesg
    result = await exec_in(client, user, sandbox["id"], ["sh", "-c", "echo out; exit 4"])
    assert (result["exitCode"], result["stdout"]) == (4, "out\n")
    slow = await exec_in(client, user, sandbox["id"], "sleep 77 & sleep 78", timeoutSeconds=1)
    assert slow["timedOut"] is True
    after = await exec_in(client, user, sandbox["id"], "ps -o args")
    assert "sleep 7" not in after["stdout"], after["stdout"]
    await destroy_all(client, user)
