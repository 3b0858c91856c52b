"""The whole platform on a three-server NATS cluster on loopback, every stream replicated three
times; one cluster (and one platform) per test module, since its tests kill NATS servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sbx_common.topology import KV_BUCKETS, STREAMS
from sbx_devstack.nats_cluster import EmbeddedNatsCluster
from sbx_devstack.servers import EmbeddedPostgres

from tests.support.docker import remove_instance_containers
from tests.support.nats_auth import authorization, service_env
from tests.support.platform import Platform, new_instance, platform_env, prepare

SERVERS = 3
REPLICAS = 3
# Every stream, the KV buckets' included.
ALL_STREAMS = [*(str(s.name) for s in STREAMS), *(f"KV_{b.bucket}" for b in KV_BUCKETS)]


@dataclass
class ClusterPlatform:
    nats: EmbeddedNatsCluster
    platform: Platform
    database_url: str


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsCluster]:
    cluster = EmbeddedNatsCluster(tmp_path_factory.mktemp("nats-cluster"), SERVERS, authorization())
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def cluster_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("cluster-postgres")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
async def cluster_platform(
    nats_cluster: EmbeddedNatsCluster,
    cluster_postgres: str,
    test_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ClusterPlatform]:
    """The six services on the cluster, each given all three servers' URLs. The topology is
    applied with one replica first, then `sbx-migrate` runs with `SBX_STREAM_REPLICAS=3`, as on
    an existing installation whose setting is raised."""
    await prepare(cluster_postgres, nats_cluster.url, replicas=1)
    migrate = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.prefix) / "bin" / "sbx-migrate")],
        env={
            **os.environ,
            **service_env("migrate"),
            "SBX_DATABASE_URL": cluster_postgres,
            "SBX_NATS_URL": nats_cluster.url,
            "SBX_STREAM_REPLICAS": str(REPLICAS),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    # It says what it changed: every stream went from one copy to three.
    assert (migrate.stdout + migrate.stderr).count("stream replicas changed") == len(ALL_STREAMS)
    instance = new_instance()
    plat = Platform(
        base_env=platform_env(cluster_postgres, nats_cluster.url, instance),
        log_dir=tmp_path_factory.mktemp("cluster-logs"),
    )
    try:
        for name in ("orchestrator", "log-shipper", "reaper", "metrics-collector", "webhooks", "api"):
            plat.start_service(name)
        yield ClusterPlatform(nats_cluster, plat, cluster_postgres)
    finally:
        plat.stop_all()
        remove_instance_containers(instance)


@pytest.fixture
async def cluster_client(cluster_platform: ClusterPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with cluster_platform.platform.client() as http:
        yield http
