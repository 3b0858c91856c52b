"""Session fixtures: real NATS JetStream, PostgreSQL and Docker, and the running platform.

By default NATS and PostgreSQL are the embedded servers from PyPI wheels, started on free ports
with their own data folders. `--infra=testcontainers` starts them as containers instead (on
machines that can pull images).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sbx_common import db, natsconn, topology
from sbx_common.labels import INSTANCE as INSTANCE_LABEL
from sbx_devstack.servers import EmbeddedNats, EmbeddedPostgres

from tests.harness import TEST_INSTANCE, Platform, User, build_test_image, platform_env, signup


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--infra",
        choices=["embedded", "testcontainers"],
        default="embedded",
        help="how to start NATS and PostgreSQL for the tests",
    )


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def nats_server(request: pytest.FixtureRequest, infra_dir: Path) -> Iterator[EmbeddedNats]:
    if request.config.getoption("--infra") == "testcontainers":
        from testcontainers.nats import NatsContainer

        with NatsContainer("nats:2.10", jetstream=True) as container:
            server = EmbeddedNats(infra_dir / "unused")
            server.port = int(container.get_exposed_port(4222))
            yield server
        return
    server = EmbeddedNats(infra_dir / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, infra_dir: Path) -> Iterator[str]:
    if request.config.getoption("--infra") == "testcontainers":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    server = EmbeddedPostgres(infra_dir / "postgres").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
async def migrated(database_url: str, nats_url: str) -> str:
    await db.migrate(database_url)
    nc = await natsconn.connect(nats_url, "tests-setup")
    await topology.apply_topology(nc.jetstream())
    await nc.close()
    return database_url


@pytest.fixture(scope="session")
def test_image() -> str:
    return build_test_image()


HEALTHCHECK_IMAGE = "sbx-test-healthcheck:latest"
UNHEALTHY_IMAGE = "sbx-test-unhealthy:latest"

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


def build_image(tag: str, dockerfile: str) -> str:
    """An image built locally from the test image (no registry involved)."""
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"],
        input=dockerfile.encode(),
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    return tag


@pytest.fixture(scope="session")
def healthcheck_image(test_image: str) -> Iterator[str]:
    yield build_image(HEALTHCHECK_IMAGE, HEALTHCHECK_DOCKERFILE.format(base=test_image))
    subprocess.run(["docker", "rmi", "-f", HEALTHCHECK_IMAGE], capture_output=True, check=False)


@pytest.fixture(scope="session")
def unhealthy_image(test_image: str) -> Iterator[str]:
    yield build_image(UNHEALTHY_IMAGE, UNHEALTHY_DOCKERFILE.format(base=test_image))
    subprocess.run(["docker", "rmi", "-f", UNHEALTHY_IMAGE], capture_output=True, check=False)


@pytest.fixture(scope="session")
def platform(
    migrated: str, nats_url: str, test_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """All five services, started once for the session."""
    plat = Platform(base_env=platform_env(migrated, nats_url), log_dir=tmp_path_factory.mktemp("logs"))
    for name in ("orchestrator", "log-shipper", "reaper", "metrics-collector", "api"):
        plat.start_service(name)
    yield plat
    plat.stop_all()
    remove_platform_containers()


def remove_platform_containers() -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={INSTANCE_LABEL}={TEST_INSTANCE}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=60) as http:
        yield http


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await signup(client)


@pytest.fixture
async def other_user(client: httpx.AsyncClient) -> User:
    return await signup(client)


@pytest.fixture
async def pg(migrated: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated)
    yield conn
    await conn.close()
