"""Reading the hosts' registry (`sbx_common.hosts.read_hosts`) on a real NATS server of its own,
with the permissions of the services that read it: every host that announced itself is in every
read, also when many reads run at once (a read that missed the hosts would place every sandbox
on `local`), and a host whose key was deleted or purged is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from sbx_common import subjects
from sbx_common.hosts import HostHeartbeat, read_hosts

from tests.support.nats_auth import admin_connect, connect_as, nats_server
from tests.support.platform import apply_topology

HOSTS = [f"host-{i}" for i in range(5)]
READERS = ["sbx-api", "sbx-reaper", "sbx-admin"]


@pytest.fixture(scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A NATS server with the platform's streams and buckets, and five hosts announced."""
    server = nats_server(tmp_path_factory.mktemp("registry-nats")).start()
    try:
        await apply_topology(server.url)
        admin = await admin_connect(server.url, "registry-tests")
        try:
            kv = await admin.jetstream().key_value(subjects.HOSTS_BUCKET)
            for index, host in enumerate(HOSTS):
                beat = HostHeartbeat(host_id=host, cpus=index + 1.0, memory_mib=1024, engine_ok=True)
                await kv.put(host, beat.to_bytes())
        finally:
            await admin.close()
        yield server.url
    finally:
        server.stop()


async def reader(url: str, user: str) -> NatsClient:
    return await connect_as(url, user, "registry-reader")


@pytest.mark.parametrize("user", READERS)
async def test_every_read_sees_every_host_also_many_at_once(registry: str, user: str) -> None:
    nc = await reader(registry, user)
    try:
        js = nc.jetstream()
        for _ in range(5):
            reads = await asyncio.gather(*(read_hosts(js) for _ in range(40)))
            for hosts in reads:
                assert sorted(hosts) == HOSTS
                assert [hosts[h].cpus for h in HOSTS] == [1.0, 2.0, 3.0, 4.0, 5.0]
    finally:
        await nc.close()


async def test_a_deleted_or_purged_host_is_not_listed(registry: str) -> None:
    admin = await admin_connect(registry, "registry-tests")
    try:
        kv = await admin.jetstream().key_value(subjects.HOSTS_BUCKET)
        await kv.delete(HOSTS[0])
        await kv.purge(HOSTS[1])
        nc = await reader(registry, "sbx-api")
        try:
            assert sorted(await read_hosts(nc.jetstream())) == HOSTS[2:]
        finally:
            await nc.close()
    finally:
        await admin.close()
