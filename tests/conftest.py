"""Session fixtures: real NATS JetStream, PostgreSQL and Docker, and the running platform.

By default NATS and PostgreSQL are the embedded servers from PyPI wheels, started on free ports
with their own data folders. `--infra=testcontainers` starts them as containers instead (on
machines that can pull images).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import docker
import httpx
import pytest
from nats.aio.client import Client as NatsClient
from sbx_devstack.servers import EmbeddedNats, EmbeddedPostgres

from tests.support.api import User, signup
from tests.support.commands import CommandTap, tap_commands
from tests.support.docker import (
    HEALTHCHECK_DOCKERFILE,
    HEALTHCHECK_IMAGE,
    UNHEALTHY_DOCKERFILE,
    UNHEALTHY_IMAGE,
    build_image,
    build_test_image,
    remove_image,
    remove_instance_containers,
)
from tests.support.nats_auth import admin_connect
from tests.support.nats_auth import nats_server as start_nats
from tests.support.platform import TEST_INSTANCE, WEBHOOKS_ENV, Platform, platform_env, prepare


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
    server = start_nats(infra_dir / "nats").start()
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
    await prepare(database_url, nats_url)
    return database_url


@pytest.fixture(scope="session")
def test_image() -> str:
    return build_test_image()


@pytest.fixture(scope="session")
def healthcheck_image(test_image: str) -> Iterator[str]:
    yield build_image(HEALTHCHECK_IMAGE, HEALTHCHECK_DOCKERFILE.format(base=test_image))
    remove_image(HEALTHCHECK_IMAGE)


@pytest.fixture(scope="session")
def unhealthy_image(test_image: str) -> Iterator[str]:
    yield build_image(UNHEALTHY_IMAGE, UNHEALTHY_DOCKERFILE.format(base=test_image))
    remove_image(UNHEALTHY_IMAGE)


@pytest.fixture(scope="session")
def platform(
    migrated: str, nats_url: str, test_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """All six services, started once for the session."""
    plat = Platform(base_env=platform_env(migrated, nats_url), log_dir=tmp_path_factory.mktemp("logs"))
    for name in ("orchestrator", "log-shipper", "reaper", "metrics-collector", "webhooks", "api"):
        # The webhook tests' receivers listen on loopback.
        plat.start_service(name, WEBHOOKS_ENV if name == "webhooks" else None)
    yield plat
    plat.stop_all()
    remove_instance_containers(TEST_INSTANCE)


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as http:
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


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A NATS connection of the test's own."""
    conn = await admin_connect(nats_url, "tests")
    yield conn
    await conn.close()


@pytest.fixture
async def command_tap(nc: NatsClient) -> AsyncIterator[CommandTap]:
    """Every command published to the orchestrator from now on."""
    async with tap_commands(nc) as tap:
        yield tap
