"""Sandbox networks: what a sandbox can and cannot reach, through the real firewall.

Traffic goes only to hosts this module makes on this machine: sandboxes, an HTTP server on the
sandbox bridge's gateway address (standing for the host and its services), and a network
namespace joined to the host by a veth pair, serving HTTP on 198.18.0.2 and 198.18.0.3 (the
benchmarking range, standing for "the internet") and on 169.254.77.2 (a link-local address,
standing for the cloud metadata service). Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import docker
import httpx
import pytest
from sandbox_platform import AsyncClient, NetworkPolicy
from sbx_common import labels
from sbx_orchestrator.engine.firewall import Chains, bridge_name, network_name

from tests.support.api import User, create_environment, signup
from tests.support.docker import sandbox_address
from tests.support.platform import TEST_INSTANCE, Platform
from tests.support.sandboxes import create_sandbox, destroy_all, exec_in, get_sandbox
from tests.support.waiting import wait_for

PORT = 8080
INTERNET = "198.18.0.2"
OTHER_INTERNET = "198.18.0.3"
LINK_LOCAL = "169.254.77.2"
HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"
CHAINS = Chains(TEST_INSTANCE)
BRIDGE = bridge_name(TEST_INSTANCE)


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def serve(*prefix: str, bind: str, port: int, root: Path) -> subprocess.Popen[bytes]:
    """An HTTP server (Python's) of the test's own, answering "hello"."""
    (root / "index.html").write_text("hello\n")
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "http.server", str(port), "--bind", bind, "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def listening(address: str, port: int, netns: str | None = None) -> bool:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    probe = f"import socket; socket.create_connection(('{address}', {port}), timeout=1).close()"
    return (
        subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True, check=False).returncode
        == 0
    )


def wait_listening(address: str, port: int, netns: str | None = None) -> None:
    deadline = time.monotonic() + 15
    while not listening(address, port, netns):
        assert time.monotonic() < deadline, f"test server on {address}:{port} did not start"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A network namespace behind a veth pair, serving HTTP on "internet" and link-local addresses."""
    tag = uuid.uuid4().hex[:6]
    netns, host_end, ns_end = f"sbxt-{tag}", f"sbxh{tag}", f"sbxn{tag}"
    sh("ip", "netns", "add", netns)
    server = None
    try:
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        sh("ip", "link", "set", ns_end, "netns", netns)
        sh("ip", "addr", "add", "198.18.0.1/24", "dev", host_end)
        sh("ip", "addr", "add", "169.254.77.1/24", "dev", host_end)
        sh("ip", "link", "set", host_end, "up")
        for address in (f"{INTERNET}/24", f"{OTHER_INTERNET}/24", f"{LINK_LOCAL}/24"):
            sh("ip", "netns", "exec", netns, "ip", "addr", "add", address, "dev", ns_end)
        sh("ip", "netns", "exec", netns, "ip", "link", "set", ns_end, "up")
        sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
        server = serve(
            "ip", "netns", "exec", netns, bind="0.0.0.0", port=PORT, root=tmp_path_factory.mktemp("www")
        )
        wait_listening(INTERNET, PORT, netns)
        yield netns
    finally:
        if server is not None:
            stop(server)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


@pytest.fixture(scope="module")
async def owner(platform: Platform) -> User:
    async with platform.client() as http:
        return await signup(http)


@pytest.fixture(scope="module")
async def http(platform: Platform, owner: User) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as client:
        yield client
        await destroy_all(client, owner)


async def sandbox_with(
    client: httpx.AsyncClient, user: User, network: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    extra = {"network": network} if network is not None else {}
    fields.setdefault("command", ["sleep", "3600"])
    env = await create_environment(client, user, cpu=0.25, memory=32, **extra, **fields)
    sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=60")
    assert sandbox["status"] == "running", sandbox
    return sandbox


def address_of(docker_client: docker.DockerClient, sandbox_id: str) -> str:
    address = sandbox_address(docker_client, uuid.UUID(sandbox_id), TEST_INSTANCE)
    assert address
    return address


async def reaches(
    client: httpx.AsyncClient, user: User, sandbox_id: str, address: str, port: int = PORT
) -> bool:
    """Whether the sandbox gets "hello" over HTTP from address:port (busybox nc, 2 s to connect)."""
    result = await exec_in(
        client,
        user,
        sandbox_id,
        f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {address} {port}",
        timeout_seconds=15,
    )
    return "hello" in result["stdout"]


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


def platform_rules() -> list[str]:
    return [line for line in iptables_rules().splitlines() if CHAINS.main in line]


async def test_a_sandbox_reaches_no_other_sandbox_of_its_owner_or_of_anyone(
    http: httpx.AsyncClient, owner: User, docker_client: docker.DockerClient
) -> None:
    server = await sandbox_with(http, owner, command=["sh", "-c", HTTPD])
    target = address_of(docker_client, server["id"])
    # The server does serve: from inside its own sandbox.
    assert await wait_for(lambda: reaches(http, owner, server["id"], "127.0.0.1"), timeout=20)

    neighbour = await sandbox_with(http, owner)
    stranger_user = await signup(http)
    try:
        stranger = await sandbox_with(http, stranger_user)
        assert not await reaches(http, owner, neighbour["id"], target)
        assert not await reaches(http, stranger_user, stranger["id"], target)
    finally:
        await destroy_all(http, stranger_user)


async def test_the_host_and_link_local_addresses_are_out_of_reach_while_the_internet_is_not(
    http: httpx.AsyncClient,
    owner: User,
    outside: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    sandbox = await sandbox_with(http, owner)
    assert sandbox["network"] == {"egress": "internet", "allow": []}
    gateway = docker_client.api.inspect_network(network_name(TEST_INSTANCE))["IPAM"]["Config"][0]["Gateway"]
    host_server = serve(bind=gateway, port=PORT + 1, root=tmp_path)
    try:
        wait_listening(gateway, PORT + 1)
        assert await reaches(http, owner, sandbox["id"], INTERNET)
        assert not await reaches(http, owner, sandbox["id"], gateway, PORT + 1)
        assert not await reaches(http, owner, sandbox["id"], LINK_LOCAL)
    finally:
        stop(host_server)


async def test_egress_none_reaches_nothing(http: httpx.AsyncClient, owner: User, outside: str) -> None:
    sandbox = await sandbox_with(http, owner, network={"egress": "none"})
    assert sandbox["network"] == {"egress": "none", "allow": []}
    assert not await reaches(http, owner, sandbox["id"], INTERNET)


async def test_an_allowlist_lets_through_only_what_it_lists(
    http: httpx.AsyncClient, owner: User, outside: str
) -> None:
    policy = {"egress": "allowlist", "allow": [f"{INTERNET}/32", "localhost"]}
    sandbox = await sandbox_with(http, owner, network=policy)
    assert sandbox["network"] == policy
    assert await reaches(http, owner, sandbox["id"], INTERNET)
    assert not await reaches(http, owner, sandbox["id"], OTHER_INTERNET)
    # The hostname was resolved on the host (from its hosts file: no DNS query leaves the
    # machine) and its address let through after the deny chain, which still drops loopback.
    rules = [line for line in iptables_rules().splitlines() if CHAINS.of(uuid.UUID(sandbox["id"])) in line]
    assert any("-d 127.0.0.1/32 -j RETURN" in line for line in rules), rules
    deny_at = next(i for i, line in enumerate(rules) if line.endswith(f"-j {CHAINS.deny}"))
    assert deny_at < next(i for i, line in enumerate(rules) if "-d 127.0.0.1/32" in line)


async def test_a_live_change_applies_within_a_second(
    http: httpx.AsyncClient, owner: User, outside: str, docker_client: docker.DockerClient
) -> None:
    sandbox = await sandbox_with(http, owner, network={"egress": "none"})
    chain = CHAINS.of(uuid.UUID(sandbox["id"]))
    assert not await reaches(http, owner, sandbox["id"], INTERNET)

    started = time.monotonic()
    response = await http.patch(
        f"/sandboxes/{sandbox['id']}/network",
        json={"egress": "allowlist", "allow": [INTERNET]},
        headers=owner.headers,
    )
    answered = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["data"]["network"] == {"egress": "allowlist", "allow": [f"{INTERNET}/32"]}

    async def applied() -> bool:
        return f"-A {chain} -d {INTERNET}/32 -j RETURN" in iptables_rules()

    await wait_for(applied, timeout=5, interval=0.01)
    in_force = time.monotonic() - started
    figures = f"answered in {answered * 1000:.0f} ms, rules in force after {in_force * 1000:.0f} ms"
    print(f"\nnetwork change: {figures}")
    assert await reaches(http, owner, sandbox["id"], INTERNET)
    assert not await reaches(http, owner, sandbox["id"], OTHER_INTERNET)
    assert (await get_sandbox(http, owner, sandbox["id"]))["network"]["egress"] == "allowlist"


async def test_published_ports_are_served_on_the_bind_address(http: httpx.AsyncClient, owner: User) -> None:
    sandbox = await sandbox_with(
        http, owner, network={"egress": "none"}, command=["sh", "-c", HTTPD], ports=[{"container": PORT}]
    )
    (endpoint,) = sandbox["endpoints"]
    assert endpoint["url"].startswith("http://127.0.0.1:")

    async def served() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=3) as client:
                reply = await client.get(f"http://127.0.0.1:{endpoint['hostPort']}/")
                return reply.status_code == 200 and reply.text == "hello\n"
        return False

    assert await wait_for(served, timeout=20)


async def test_rules_go_with_the_sandbox(
    http: httpx.AsyncClient, owner: User, docker_client: docker.DockerClient
) -> None:
    sandbox = await sandbox_with(http, owner, network={"egress": "allowlist", "allow": ["203.0.113.7"]})
    address = address_of(docker_client, sandbox["id"])
    chain = CHAINS.of(uuid.UUID(sandbox["id"]))
    assert any(f"-s {address}/32 -g {chain}" in line for line in platform_rules())
    response = await http.delete(f"/sandboxes/{sandbox['id']}?wait=true", headers=owner.headers)
    assert response.json()["data"]["status"] == "destroyed"
    # The orchestrator takes the rules away once the destroy is recorded (Lifecycle._destroy).
    await wait_for(lambda: rules_gone([(address, chain)]), timeout=10, interval=0.01, what="its rules gone")


async def rules_gone(guarded: list[tuple[str, str]]) -> bool:
    """No rule names any of these sandboxes' addresses or chains (address, chain)."""
    rules = await asyncio.to_thread(iptables_rules)
    return not any(f"{address}/32" in rules or chain in rules for address, chain in guarded)


def docker_reaches(docker_client: docker.DockerClient, container: str, address: str) -> bool:
    """`reaches`, for a container that is not a sandbox yet (a warm pool's): through Docker."""
    result = docker_client.api.exec_create(
        container, ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {address} {PORT}"]
    )
    return b"hello" in docker_client.api.exec_start(result["Id"])


async def test_a_warm_pool_container_is_guarded_by_its_environments_policy_until_it_goes(
    http: httpx.AsyncClient,
    outside: str,
    docker_client: docker.DockerClient,
    pg: asyncpg.Connection,
) -> None:
    # A user of its own: its pool counts against its quota, not the module owner's.
    owner = await signup(http)
    policy = {"egress": "allowlist", "allow": [f"{INTERNET}/32"]}
    env = await create_environment(
        http, owner, cpu=0.25, memory=32, command=["sleep", "3600"], network=policy, warmPool=1
    )
    try:
        slot = await wait_for(
            lambda: pg.fetchval(
                "SELECT id FROM warm_pool_slots WHERE environment_id = $1 AND ready", uuid.UUID(env["id"])
            ),
            timeout=60,
            what="a ready pooled container",
        )
        container = labels.container_name(slot)
        address = address_of(docker_client, str(slot))
        # Waiting for a claim, it already has its environment's policy: what it lists, and
        # nothing else.
        assert any(f"-s {address}/32 -g {CHAINS.of(slot)}" in line for line in platform_rules())
        assert await asyncio.to_thread(docker_reaches, docker_client, container, INTERNET)
        assert not await asyncio.to_thread(docker_reaches, docker_client, container, OTHER_INTERNET)
        # Claimed, the sandbox it became keeps that policy.
        sandbox = await create_sandbox(http, owner, env["id"], "?wait=true&timeout=60")
        assert sandbox["id"] == str(slot)
        assert sandbox["network"] == policy
        assert await reaches(http, owner, sandbox["id"], INTERNET)
        assert not await reaches(http, owner, sandbox["id"], OTHER_INTERNET)
        # The refill's container is guarded too; drained, its rules go with it.
        refill = await wait_for(
            lambda: pg.fetchval(
                "SELECT id FROM warm_pool_slots WHERE environment_id = $1 AND ready", uuid.UUID(env["id"])
            ),
            timeout=60,
            what="the refilled pooled container",
        )
        refill_address = address_of(docker_client, str(refill))
        assert any(CHAINS.of(refill) in line for line in platform_rules())
        await http.put(f"/environments/{env['id']}", json={"warmPool": 0}, headers=owner.headers)

        async def rules_gone() -> bool:
            rules = iptables_rules()
            return CHAINS.of(refill) not in rules and f"{refill_address}/32" not in rules

        await wait_for(rules_gone, timeout=60, what="the drained container's rules gone")
    finally:
        await http.put(f"/environments/{env['id']}", json={"warmPool": 0}, headers=owner.headers)
        await destroy_all(http, owner)


async def test_sandboxes_started_and_destroyed_together_each_get_and_lose_their_rules(
    http: httpx.AsyncClient, docker_client: docker.DockerClient
) -> None:
    # Changes that come while a load runs are loaded together by the next one: each sandbox's
    # rules must still be in before it is reported running, and gone once it is destroyed.
    # A user of its own: the module's owner keeps sandboxes of other tests within its quota.
    owner = await signup(http)
    try:
        await _started_and_destroyed_together(http, owner, docker_client)
    finally:
        await destroy_all(http, owner)


async def _started_and_destroyed_together(
    http: httpx.AsyncClient, owner: User, docker_client: docker.DockerClient
) -> None:
    env = await create_environment(http, owner, cpu=0.25, memory=32, command=["sleep", "3600"])
    sandboxes = await asyncio.gather(
        *(create_sandbox(http, owner, env["id"], "?wait=true&timeout=120") for _ in range(5))
    )
    assert all(s["status"] == "running" for s in sandboxes), sandboxes
    guarded = [(address_of(docker_client, s["id"]), CHAINS.of(uuid.UUID(s["id"]))) for s in sandboxes]
    rules = platform_rules()
    for address, chain in guarded:
        assert any(f"-s {address}/32 -g {chain}" in line for line in rules), (address, chain)
    query = "?wait=true&timeout=120"
    answers = await asyncio.gather(
        *(http.delete(f"/sandboxes/{s['id']}{query}", headers=owner.headers) for s in sandboxes)
    )
    assert [a.json()["data"]["status"] for a in answers] == ["destroyed"] * len(sandboxes)
    # Each sandbox's rules go right after its destroy is recorded.
    await wait_for(lambda: rules_gone(guarded), timeout=10, interval=0.01, what="their rules gone")


async def test_the_rules_are_rebuilt_when_the_orchestrator_restarts(
    http: httpx.AsyncClient, owner: User, platform: Platform, docker_client: docker.DockerClient
) -> None:
    sandbox = await sandbox_with(http, owner, network={"egress": "none"})
    address = address_of(docker_client, sandbox["id"])
    platform.kill_service("orchestrator")
    # What an engine restart or a flushed firewall leaves: no jump, an empty chain.
    subprocess.run(["iptables", "-F", CHAINS.main], check=True)
    while (
        subprocess.run(
            ["iptables", "-D", "DOCKER-USER", "-i", BRIDGE, "-j", CHAINS.main],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    ):
        pass
    await asyncio.to_thread(platform.start_service, "orchestrator")

    async def rebuilt() -> bool:
        rules = iptables_rules()
        return f"-A DOCKER-USER -i {BRIDGE} -j {CHAINS.main}" in rules and f"-s {address}/32" in rules

    await wait_for(rebuilt, timeout=30, interval=0.1)


@pytest.mark.parametrize(
    ("network", "path"),
    [
        ({"egress": "everything"}, "network.egress"),
        ({"egress": "allowlist", "allow": ["10.0.0.300/8"]}, "network.allow.0"),
        ({"egress": "allowlist", "allow": ["10.0.0.1/8"]}, "network.allow.0"),
        ({"egress": "allowlist", "allow": ["bad_host!"]}, "network.allow.0"),
        ({"egress": "allowlist", "allow": [f"203.0.113.{i}" for i in range(65)]}, "network.allow"),
        ({"egress": "internet", "extra": 1}, "network.extra"),
    ],
)
async def test_bad_policies_are_refused_and_change_nothing(
    http: httpx.AsyncClient, owner: User, network: dict[str, Any], path: str
) -> None:
    response = await http.post(
        "/environments",
        json={"name": f"bad-{uuid.uuid4().hex[:8]}", "image": "busybox", "network": network},
        headers=owner.headers,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [e["path"] for e in error["details"]["errors"]] == [path]

    env = await create_environment(http, owner, network={"egress": "allowlist", "allow": ["Example.COM"]})
    assert env["network"] == {"egress": "allowlist", "allow": ["example.com"]}
    response = await http.put(f"/environments/{env['id']}", json={"network": network}, headers=owner.headers)
    assert response.status_code == 400
    listed = await http.get(f"/environments/{env['id']}/versions", headers=owner.headers)
    assert [v["network"]["allow"] for v in listed.json()["data"]] == [["example.com"]]


async def test_a_bad_live_change_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    env = await create_environment(http, owner, test_image, cpu=0.25, memory=32, command=["sleep", "3600"])
    sandbox = await create_sandbox(http, owner, env["id"])
    response = await http.patch(
        f"/sandboxes/{sandbox['id']}/network",
        json={"egress": "allowlist", "allow": ["300.1.1.1"]},
        headers=owner.headers,
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"][0]["path"] == "allow.0"
    assert (await get_sandbox(http, owner, sandbox["id"]))["network"] == {"egress": "internet", "allow": []}
    other = await signup(http)
    response = await http.patch(
        f"/sandboxes/{sandbox['id']}/network", json={"egress": "none"}, headers=other.headers
    )
    assert response.status_code == 404


async def test_the_clients_set_policies(
    platform: Platform, owner: User, http: httpx.AsyncClient, test_image: str
) -> None:
    """The Python SDK (`network=` on environments, `Sandbox.update_network`) and the CLI
    (`sbx env create --egress/--allow`, `sbx network`)."""
    async with AsyncClient(base_url=platform.api_url, token=owner.token) as client:
        env = await client.environments.create(
            f"sdk-{uuid.uuid4().hex[:8]}",
            test_image,
            cpu=0.25,
            memory=32,
            command=["sleep", "3600"],
            network=NetworkPolicy(egress="none"),
        )
        assert env.network.egress == "none"
        sandbox = await client.sandboxes.create(env.id)
        assert sandbox.network.egress == "none"
        await sandbox.update_network("allowlist", [INTERNET, "localhost"])
        assert sandbox.network.allow == [f"{INTERNET}/32", "localhost"]
        assert (await client.sandboxes.get(sandbox.id)).network.egress == "allowlist"

    key = (await http.post("/api-keys", json={"name": "cli"}, headers=owner.headers)).json()["data"]["key"]
    cli_env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": "/nonexistent",
        "SBX_API_URL": platform.api_url,
        "SBX_API_KEY": key,
    }

    def sbx(*args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "sbx"), *args],
            capture_output=True,
            text=True,
            env=cli_env,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = json.loads(
        sbx(
            "env",
            "create",
            f"cli-{uuid.uuid4().hex[:8]}",
            "--image",
            test_image,
            "--egress",
            "allowlist",
            "--allow",
            "203.0.113.0/24",
            "--json",
        )
    )
    assert created["network"] == {"egress": "allowlist", "allow": ["203.0.113.0/24"]}
    changed = json.loads(sbx("network", sandbox.id, "--egress", "none", "--json"))
    assert changed["network"] == {"egress": "none", "allow": []}
