"""A multi-host platform on one machine: a three-server NATS cluster on loopback (every stream
and bucket with three replicas), the API, reaper and webhooks once, and per host an
orchestrator and a log shipper on that host's Docker engine (the machine's own engine for the
first host, an extra dockerd for each other: `sbx_devstack.engines`)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sbx_devstack.engines import DockerEngine
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import free_port, wait_for_port

from tests.support.docker import remove_instance_network
from tests.support.nats_auth import service_env
from tests.support.platform import DedicatedPlatform, dedicated_platform

NATS_SERVERS = 3
# The services every host runs on its own engine.
PER_HOST = ("orchestrator", "log-shipper")


@dataclass
class Host:
    host_id: str
    engine: DockerEngine | None  # None: the machine's own engine
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def docker_host(self) -> str | None:
        return self.engine.docker_host if self.engine is not None else None

    def docker(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        prefix = ["docker", "-H", self.docker_host] if self.docker_host else ["docker"]
        return subprocess.run([*prefix, *args], capture_output=True, check=False)

    def container_ids(self, instance: str) -> set[str]:
        """The sandbox ids of the instance's containers on this host's engine."""
        out = self.docker(
            "ps",
            "-a",
            "--filter",
            f"label=sbx.instance={instance}",
            "--format",
            '{{.Label "sbx.sandbox-id"}}',
        )
        return {line for line in out.stdout.decode().split() if line}

    def start(self, base_env: Mapping[str, str]) -> None:
        for name in PER_HOST:
            port = free_port()
            env = {**base_env, **service_env(name), **self.env, "SBX_HOST_ID": self.host_id}
            env["SBX_METRICS_PORT"] = str(port)
            if self.docker_host:
                env["SBX_DOCKER_HOST"] = self.docker_host
            log = self.log_dir / f"{name}-{self.host_id}.log"
            self.processes[name] = ServiceProcess(name, env, log_file=log).start()
            wait_for_port(port, timeout=60)

    def kill(self) -> None:
        """The host dies: its engine and its services are SIGKILLed."""
        for proc in self.processes.values():
            proc.kill()
        self.processes.clear()
        if self.engine is not None:
            self.engine.kill()

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.stop()
        self.processes.clear()


@dataclass
class Topology:
    dedicated: DedicatedPlatform
    hosts: dict[str, Host]

    @property
    def instance(self) -> str:
        return self.dedicated.instance


@contextlib.asynccontextmanager
async def multi_host_platform(
    root: Path, image: str, hosts: Mapping[str, Mapping[str, str]], env: Mapping[str, str]
) -> AsyncIterator[Topology]:
    """`hosts`: host id -> its own settings; the first uses the machine's engine, each other an
    extra engine with `image` loaded. Everything goes at the end (the engines with their
    containers, bridges and folders; each host's network and iptables chains)."""
    made: dict[str, Host] = {}
    engines: list[DockerEngine] = []
    try:
        async with dedicated_platform(
            root, services=("api", "reaper", "webhooks"), env=env, nats_servers=NATS_SERVERS
        ) as dedicated:
            try:
                for n, (host_id, host_env) in enumerate(hosts.items()):
                    engine = None
                    if n > 0:
                        engine = DockerEngine(n)
                        engines.append(engine)  # taken down at the end even if it does not start
                        engine.start()
                        engine.load_image(image)
                    host = Host(host_id, engine, dict(host_env), dedicated.platform.log_dir)
                    made[host_id] = host
                    host.start(dedicated.platform.base_env)
                yield Topology(dedicated, made)
            finally:
                for host in made.values():
                    host.stop()
                for host in made.values():
                    remove_instance_network(dedicated.instance, host.host_id, host.docker_host)
    finally:
        for engine in engines:
            engine.stop()
