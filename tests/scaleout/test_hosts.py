"""Many Docker hosts behind one API (docs/scale-out.md): two hosts on this machine, `alpha` on
the machine's own engine and `beta` on an extra dockerd with its own data root, exec root, socket
and bridge. Placement, every route on the second host, full and draining hosts, and a host whose
engine dies. One topology for the module; the tests run in order (the last one kills `beta`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg
from sbx_common import subjects
from sbx_common.nats_permissions import ADMIN_USER

from tests.agent.processes import all_output, start, text_of, wait_ended
from tests.scaleout.topology import Topology, multi_host_platform
from tests.streams.clients import open_terminal, terminal_url
from tests.support.api import User, create_environment, data_of, error_of, signup
from tests.support.nats_auth import CREDENTIALS, connect_as
from tests.support.sandboxes import create_sandbox, exec_in, get_sandbox, lifecycle
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]  # the topology starts with the first test

GRACE = 8  # SBX_HOST_GRACE of this platform (seconds)
# Room for two sandboxes of 0.5 CPU on alpha, four on beta.
HOSTS = {
    "alpha": {"SBX_HOST_CPUS": "1.0", "SBX_HOST_MEMORY_MIB": "4096"},
    "beta": {"SBX_HOST_CPUS": "2.0", "SBX_HOST_MEMORY_MIB": "4096", "SBX_HOST_LABELS": "zone=b"},
}


@pytest.fixture(scope="module")
async def topology(tmp_path_factory: pytest.TempPathFactory, test_image: str) -> AsyncIterator[Topology]:
    env = {"SBX_HOST_GRACE": str(GRACE), "SBX_HOST_ID": "alpha", "SBX_MAX_SANDBOXES_PER_USER": "20"}
    async with multi_host_platform(tmp_path_factory.mktemp("scaleout"), test_image, HOSTS, env) as topo:
        yield topo


@pytest.fixture(scope="module")
async def client(topology: Topology) -> AsyncIterator[httpx.AsyncClient]:
    async with topology.dedicated.client() as http:
        yield http


@pytest.fixture(scope="module")
async def user(client: httpx.AsyncClient) -> User:
    return await signup(client)


@pytest.fixture(scope="module")
async def environment(client: httpx.AsyncClient, user: User, test_image: str) -> dict[str, Any]:
    return await create_environment(client, user, test_image, cpu=0.5, memory=64)


async def hosts_seen(client: httpx.AsyncClient, user: User) -> dict[str, list[str]]:
    """The user's sandboxes that are not destroyed, by host."""
    response = await client.get("/sandboxes", params={"limit": 100}, headers=user.headers)
    found: dict[str, list[str]] = {}
    for sandbox in data_of(response):
        if sandbox["status"] not in ("destroyed", "expired"):
            found.setdefault(sandbox["hostId"], []).append(sandbox["id"])
    return found


async def destroy_all(client: httpx.AsyncClient, user: User) -> None:
    for ids in (await hosts_seen(client, user)).values():
        for sandbox_id in ids:
            await lifecycle(client, user, sandbox_id, "destroy")


async def test_sandboxes_land_on_every_host_each_on_its_own_engine(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    made = [await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90") for _ in range(2)]
    assert all(s["status"] == "running" for s in made), made
    assert sorted(s["hostId"] for s in made) == ["alpha", "beta"]  # spread: the emptier host each time
    for sandbox in made:
        host = topology.hosts[sandbox["hostId"]]
        other = topology.hosts["beta" if sandbox["hostId"] == "alpha" else "alpha"]
        assert sandbox["id"] in host.container_ids(topology.instance)
        assert sandbox["id"] not in other.container_ids(topology.instance)
    await destroy_all(client, user)


async def test_every_route_works_on_a_sandbox_of_the_second_host(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    # Fill alpha first (spread places the next one on the emptier beta).
    first = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90")
    sandbox = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90")
    assert {first["hostId"], sandbox["hostId"]} == {"alpha", "beta"}
    if sandbox["hostId"] != "beta":
        first, sandbox = sandbox, first
    sid = sandbox["id"]

    result = await exec_in(client, user, sid, ["sh", "-c", "echo on-beta; hostname"])
    assert result["exitCode"] == 0, result
    assert result["stdout"].startswith("on-beta\n"), result

    process = await start(client, user, sid, ["sh", "-c", "echo from-a-process"])
    await wait_ended(client, user, sid, process["id"])
    assert text_of(await all_output(client, user, sid, process["id"])) == "from-a-process\n"

    put = await client.put(
        f"/sandboxes/{sid}/files/content",
        params={"path": "/tmp/beta.txt"},
        content=b"beta bytes",
        headers=user.headers,
    )
    assert put.status_code == 201, put.text
    got = await client.get(
        f"/sandboxes/{sid}/files/content", params={"path": "/tmp/beta.txt"}, headers=user.headers
    )
    assert (got.status_code, got.content) == (200, b"beta bytes")

    async with open_terminal(terminal_url(topology.dedicated.platform.ws_url, user, sid)) as term:
        await term.type(b"echo term-$((40+2))\n")
        await term.expect("term-42")

    await exec_in(client, user, sid, ["sh", "-c", "echo to-the-log-on-beta > /proc/1/fd/1"])

    async def logged() -> bool:
        response = await client.get(f"/sandboxes/{sid}/logs", params={"tail": 50}, headers=user.headers)
        return any("to-the-log-on-beta" in line["text"] for line in data_of(response))

    await wait_for(logged, timeout=30, what="the log line shipped from beta")

    assert (await lifecycle(client, user, sid, "stop"))["status"] == "stopped"
    assert (await lifecycle(client, user, sid, "start"))["status"] == "running"
    destroyed = await lifecycle(client, user, sid, "destroy")
    assert (destroyed["status"], destroyed["hostId"]) == ("destroyed", "beta")
    assert sid not in topology.hosts["beta"].container_ids(topology.instance)
    await destroy_all(client, user)


async def test_a_full_host_gets_no_more_and_none_left_is_a_503_that_makes_nothing(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    # alpha holds 2 of 0.5 CPU, beta 4: six fit, wherever they go first.
    for _ in range(6):
        await create_sandbox(client, user, environment["id"])
    seen = await hosts_seen(client, user)
    assert {host: len(ids) for host, ids in seen.items()} == {"alpha": 2, "beta": 4}

    refused = await client.post("/sandboxes", json={"environmentId": environment["id"]}, headers=user.headers)
    error = error_of(refused, 503, "UNAVAILABLE")
    assert "No host can take this sandbox" in error["message"]
    assert error["details"]["reason"] == "no host available"
    assert await hosts_seen(client, user) == seen  # nothing half-made

    # Room on alpha again: the next create goes there.
    await lifecycle(client, user, seen["alpha"][0], "destroy")
    placed = await create_sandbox(client, user, environment["id"])
    assert placed["hostId"] == "alpha"
    await destroy_all(client, user)


async def test_concurrent_creates_never_overfill_a_host(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    # Room for six (alpha 2, beta 4); ten creates at once: six made, four refused, none over.
    answers = await asyncio.gather(
        *(
            client.post("/sandboxes", json={"environmentId": environment["id"]}, headers=user.headers)
            for _ in range(10)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] * 6 + [503] * 4, [a.text for a in answers]
    seen = await hosts_seen(client, user)
    assert {host: len(ids) for host, ids in seen.items()} == {"alpha": 2, "beta": 4}
    await destroy_all(client, user)


async def test_a_sandbox_made_from_a_snapshot_goes_to_the_snapshots_host(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    source = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90")
    assert source["hostId"] == "beta"  # the emptier host by its share (0.5 of 2 CPUs)
    taken = await client.post(f"/sandboxes/{source['id']}/snapshots?wait=true", json={}, headers=user.headers)
    assert taken.status_code in (201, 202), taken.text
    snap = taken.json()["data"]
    assert snap["status"] == "ready", snap
    # Spread would send the next sandbox to alpha: made from the snapshot, it goes where the image is.
    copies = [
        await create_sandbox(
            client, user, "", "?wait=true&timeout=90", environmentId=None, snapshotId=snap["id"]
        )
        for _ in range(2)
    ]
    assert [(c["hostId"], c["status"]) for c in copies] == [("beta", "running")] * 2
    await destroy_all(client, user)
    deleted = await client.delete(f"/snapshots/{snap['id']}", headers=user.headers)
    assert deleted.status_code in (200, 202, 204), deleted.text


def sbx_admin(topology: Topology, *args: str) -> str:
    """The operator's tool, as the NATS user `sbx-admin`."""
    env = {**topology.dedicated.platform.base_env, **CREDENTIALS.user_env(ADMIN_USER)}
    script = Path(sys.prefix) / "bin" / "sbx-admin"
    result = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_a_draining_host_gets_no_new_sandbox(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    assert "beta: draining" in sbx_admin(topology, "hosts", "drain", "beta")
    try:
        listing = [json.loads(line) for line in sbx_admin(topology, "hosts", "list", "--json").splitlines()]
        by_host = {row["hostId"]: row for row in listing}
        assert (by_host["beta"]["draining"], by_host["alpha"]["draining"]) == (True, False)
        assert (by_host["beta"]["labels"], by_host["beta"]["cpus"]) == ({"zone": "b"}, 2.0)
        placed = [await create_sandbox(client, user, environment["id"]) for _ in range(2)]
        assert [s["hostId"] for s in placed] == ["alpha", "alpha"]

        async def alpha_announces_both() -> bool:
            rows = [json.loads(line) for line in sbx_admin(topology, "hosts", "list", "--json").splitlines()]
            announced = {row["hostId"]: row["announced"] for row in rows}["alpha"]
            return bool(announced == {"sandboxes": 2, "cpus": 1.0, "memoryMib": 128})

        # The host's own heartbeat in KV says what is placed on it.
        await wait_for(
            alpha_announces_both,
            timeout=60,
            interval=1.0,
            what="alpha's heartbeat counting its two sandboxes",
        )
        refused = await client.post(
            "/sandboxes", json={"environmentId": environment["id"]}, headers=user.headers
        )
        error_of(refused, 503, "UNAVAILABLE")  # alpha is full, beta draining
    finally:
        sbx_admin(topology, "hosts", "undrain", "beta")
    placed_again = await create_sandbox(client, user, environment["id"])
    assert placed_again["hostId"] == "beta"
    await destroy_all(client, user)


async def test_a_host_whose_engine_dies_is_lost_and_new_sandboxes_go_elsewhere(
    topology: Topology, client: httpx.AsyncClient, user: User, environment: dict[str, Any]
) -> None:
    made = [await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90") for _ in range(2)]
    by_host = {s["hostId"]: s for s in made}
    on_alpha, on_beta = by_host["alpha"], by_host["beta"]

    nc = await connect_as(topology.dedicated.nats_url, "sbx-api", "scaleout-tests")
    events: list[dict[str, Any]] = []

    async def heard(msg: Msg) -> None:
        events.append(json.loads(msg.data))

    await nc.subscribe(subjects.events_of_sandbox(user.id, on_beta["id"]), cb=heard)
    try:
        beta = topology.hosts["beta"]
        beta.kill()

        async def lost() -> dict[str, Any] | None:
            sandbox = await get_sandbox(client, user, on_beta["id"])
            return sandbox if sandbox["status"] == "failed" else None

        # Within the grace (the reaper's own observation of it, twice over) and a few sweeps.
        failed = await wait_for(lost, timeout=4 * GRACE + 30, what="the sandbox of the lost host failed")
        assert failed["statusReason"] == "host lost"

        async def announced() -> bool:
            return any(e["status"] == "failed" and e.get("reason") == "host lost" for e in events)

        await wait_for(announced, timeout=15, what="a sandbox.failed event")
        assert (await get_sandbox(client, user, on_alpha["id"]))["status"] == "running"

        # New sandboxes go to the host that is left; a lost sandbox can only be destroyed.
        placed = await create_sandbox(client, user, environment["id"])
        assert placed["hostId"] == "alpha"
        refused = await client.post(f"/sandboxes/{on_beta['id']}/start", headers=user.headers)
        error_of(refused, 409, "INVALID_STATE")

        # The host comes back: the platform's gave-up sandbox is removed there, not resurrected.
        assert beta.engine is not None
        beta.engine.start()
        beta.start(topology.dedicated.platform.base_env)

        async def removed() -> bool:
            return on_beta["id"] not in beta.container_ids(topology.instance)

        await wait_for(removed, timeout=60, what="the lost sandbox's container removed on beta")
        again = await get_sandbox(client, user, on_beta["id"])
        assert (again["status"], again["statusReason"]) == ("failed", "host lost")
        gone = await lifecycle(client, user, on_beta["id"], "destroy")
        assert gone["status"] == "destroyed"
    finally:
        await nc.close()
        await destroy_all(client, user)
