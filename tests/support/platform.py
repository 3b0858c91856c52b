"""The platform under test: NATS and PostgreSQL prepared as `sbx-migrate` leaves them, and the
six services as real processes.

The session's platform is started once by the root conftest; tests that break things start a
platform, or a single service, of their own beside it with the helpers here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sbx_common import db, topology
from sbx_common.nats_permissions import SERVICE_USER_OF
from sbx_devstack.agent import build as build_agent
from sbx_devstack.nats_cluster import EmbeddedNatsCluster
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import EmbeddedNats, EmbeddedPostgres, free_port, wait_for_port

from tests.support.docker import remove_instance_containers
from tests.support.nats_auth import authorization, connect_as, nats_server, service_env


def new_instance() -> str:
    """An installation name of its own (`SBX_INSTANCE`): its reaper and clean-up touch only its
    own containers."""
    return f"test-{uuid.uuid4().hex[:10]}"


# The session's installation name, on every container the session's platform makes.
TEST_INSTANCE = new_instance()


@functools.cache
def agent_binary() -> str:
    """The in-sandbox agent, built once per session when missing or stale (as `make agent`)."""
    return str(build_agent())


def platform_env(database_url: str, nats_url: str, instance: str = TEST_INSTANCE) -> dict[str, str]:
    return {
        # Every sandbox gets the in-sandbox agent (docs/agent.md).
        "SBX_AGENT_BINARY": agent_binary(),
        "SBX_DATABASE_URL": database_url,
        "SBX_NATS_URL": nats_url,
        "SBX_JWT_SECRET": secrets.token_urlsafe(48),
        "SBX_SECRETS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SBX_LOG_LEVEL": "INFO",
        # A name of its own, so that this run's reaper and clean-up never touch containers of
        # another installation on the same Docker engine.
        "SBX_INSTANCE": instance,
        # Volumes (loop-mounted filesystem images) of this installation only.
        "SBX_VOLUMES_DIR": str(Path(tempfile.gettempdir()) / f"sbx-volumes-{instance}"),
        # Every test signs up its own users from one IP: the auth limit is raised for the shared
        # platform; the rate-limit tests start an API of their own with the defaults.
        "SBX_AUTH_RATE_LIMIT": "100000",
        "SBX_RATE_LIMIT_PER_MINUTE": "100000",
        "SBX_SANDBOX_CREATE_RATE_LIMIT": "100000",
        # The API's business gauges: refreshed often, so tests see changes soon.
        "SBX_METRICS_REFRESH_SECONDS": "0.5",
    }


async def apply_topology(nats_url: str, replicas: int = 1) -> None:
    """Declare the streams and the KV bucket, as `sbx-migrate` does (as its NATS user)."""
    nc = await connect_as(nats_url, SERVICE_USER_OF["migrate"], "tests-setup")
    try:
        await topology.apply_topology(nc.jetstream(), replicas)
    finally:
        await nc.close()


async def prepare(database_url: str, nats_url: str, replicas: int = 1) -> None:
    """The database migrated and the NATS topology applied, as `sbx-migrate` leaves them."""
    await db.migrate(database_url)
    await apply_topology(nats_url, replicas)


def start_process(name: str, env: Mapping[str, str], log_file: Path) -> tuple[ServiceProcess, int]:
    """One service process on its own free ops port, once that port answers; returns it and the port."""
    port = free_port()
    process = ServiceProcess(
        name, {**service_env(name), **env, "SBX_METRICS_PORT": str(port)}, log_file=log_file
    ).start()
    try:
        wait_for_port(port, timeout=30)
    except BaseException:
        process.stop()
        raise
    return process, port


async def scrape(port: int) -> str:
    """The Prometheus text a service serves on its ops port."""
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


async def metric(port: int, name: str) -> float | None:
    """One sample a service exports (`name` with or without its labels), None if it has none."""
    found = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", await scrape(port), re.MULTILINE)
    return float(found.group(1)) if found else None


# The webhooks service of a test platform delivers to loopback receivers; retries come soon.
WEBHOOKS_ENV = {"SBX_WEBHOOK_ALLOW_PRIVATE": "true", "SBX_WEBHOOK_RETRY_BASE_SECONDS": "0.5"}


@dataclass
class Platform:
    """The six services running as processes against the test NATS and PostgreSQL."""

    base_env: dict[str, str]
    log_dir: Path
    api_port: int = 0
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.api_port}"

    def client(self, timeout: float = 60) -> httpx.AsyncClient:
        """An HTTP client of this platform's API (use it as `async with`)."""
        return httpx.AsyncClient(base_url=self.api_url, timeout=timeout)

    def start_service(self, name: str, extra_env: Mapping[str, str] | None = None) -> ServiceProcess:
        # Each service connects to NATS as its own user, as in every deployment.
        env = {**self.base_env, **service_env(name)}
        if name == "api":
            self.api_port = self.api_port or free_port()
            env["SBX_API_PORT"] = str(self.api_port)
        else:
            self.ops_ports.setdefault(name, free_port())
            env["SBX_METRICS_PORT"] = str(self.ops_ports[name])
        env.update(extra_env or {})
        proc = ServiceProcess(name, env, log_file=self.log_dir / f"{name}.log").start()
        self.processes[name] = proc
        port = self.api_port if name == "api" else self.ops_ports[name]
        wait_for_port(port, timeout=30)
        return proc

    def stop_service(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.stop()

    def kill_service(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.kill()

    def restart_service(self, name: str) -> ServiceProcess:
        self.stop_service(name)
        return self.start_service(name)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop_service(name)

    def logs(self, name: str | None = None) -> str:
        """Everything the service(s) logged so far (used to check that secrets never leak)."""
        files = [self.log_dir / f"{name}.log"] if name else sorted(self.log_dir.glob("*.log"))
        return "".join(f.read_text(errors="replace") for f in files if f.exists())

    async def metrics(self, name: str) -> str:
        """What a worker service serves at /metrics on its ops port."""
        return await scrape(self.ops_ports[name])


def start_api(base_env: Mapping[str, str], log_dir: Path, **settings: str) -> Platform:
    """An API process of its own on `base_env` with `settings` over it (stop it with `stop_all`)."""
    api = Platform(base_env={**base_env, **settings}, log_dir=log_dir)
    api.start_service("api")
    return api


@contextlib.asynccontextmanager
async def extra_api(platform: Platform, log_dir: Path, **settings: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process on the same database and NATS, with its own settings (e.g. quotas),
    and a client of it."""
    api = Platform(base_env={**platform.base_env, **settings}, log_dir=log_dir)
    try:
        await asyncio.to_thread(api.start_service, "api")
        async with api.client() as http:
            yield http
    finally:
        api.stop_all()


@dataclass
class DedicatedPlatform:
    """A platform of its own (NATS, PostgreSQL, services) for tests that break things."""

    platform: Platform
    nats: EmbeddedNats | EmbeddedNatsCluster
    postgres: EmbeddedPostgres
    instance: str

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def nats_url(self) -> str:
        return self.nats.url

    def client(self) -> httpx.AsyncClient:
        return self.platform.client()


@contextlib.asynccontextmanager
async def dedicated_platform(
    root: Path,
    services: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    service_env: Mapping[str, Mapping[str, str]] | None = None,
    nats_servers: int = 1,
) -> AsyncIterator[DedicatedPlatform]:
    """Own NATS and PostgreSQL in `root`, an instance name of its own, and `services` started
    with `env` over the usual settings (and `service_env[name]` over those for one service).
    With `nats_servers` > 1, NATS is a cluster of that many servers on loopback and every stream
    and bucket has min(nats_servers, 3) replicas. Everything is stopped, and the instance's
    containers removed, at the end."""
    nats: EmbeddedNats | EmbeddedNatsCluster
    if nats_servers > 1:
        nats = EmbeddedNatsCluster(root / "nats", nats_servers, authorization()).start()
    else:
        nats = nats_server(root / "nats").start()
    postgres = EmbeddedPostgres(root / "postgres").start()
    instance = new_instance()
    plat = Platform(
        base_env={**platform_env(postgres.url, nats.url, instance), **(env or {})},
        log_dir=root / "logs",
    )
    try:
        await prepare(postgres.url, nats.url, replicas=min(nats_servers, 3))
        plat.log_dir.mkdir()
        for name in services:
            plat.start_service(name, (service_env or {}).get(name))
        yield DedicatedPlatform(plat, nats, postgres, instance)
    finally:
        plat.stop_all()
        remove_instance_containers(instance)
        postgres.stop()
        nats.stop()
