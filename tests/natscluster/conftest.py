"""The whole platform on a three-server NATS cluster on loopback, every stream replicated three
times; one cluster (and one platform) per test module, since its tests kill NATS servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sbx_devstack.nats_cluster import EmbeddedNatsCluster
from sbx_devstack.servers import EmbeddedPostgres

from tests.support.docker import remove_instance_containers
from tests.support.nats_auth import authorization
from tests.support.platform import Platform, new_instance, platform_env, prepare

SERVERS = 3
REPLICAS = 3


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
    applied with one replica first and then with three, as `sbx-migrate` does when
    `SBX_STREAM_REPLICAS` is raised on an existing installation."""
    await prepare(cluster_postgres, nats_cluster.url, replicas=1)
    await prepare(cluster_postgres, nats_cluster.url, replicas=REPLICAS)
    instance = new_instance()
    plat = Platform(
        base_env={**platform_env(cluster_postgres, nats_cluster.url, instance), "SBX_STREAM_REPLICAS": "3"},
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
