"""What a sandbox's container looks like, and what Docker's inspect output says about it.

`container_spec` is the single place that decides how a sandbox container is configured: the
environment's image, command and limits, the hardening every container gets, its labels, its
environment variables and its published ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker.types import Mount
from sbx_common import labels, runtimes

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine.firewall import network_name
from sbx_orchestrator.engine.volumes import volume_mount_point
from sbx_orchestrator.repository import SandboxRecord

MIB = 1024 * 1024
# The sandbox's `disk` limit in MiB, read back by the disk watcher from the running container.
DISK_LABEL = "sbx.disk-mib"


@dataclass(frozen=True)
class EngineFeatures:
    """What the engine can enforce itself (see DockerEngine.features)."""

    storage_quota: bool = False  # `--storage-opt size=` (overlay2 on xfs with pquota)
    blkio_weight: bool = True  # a block I/O weight controller Docker can write to


@dataclass(frozen=True)
class AgentMount:
    """The in-sandbox agent a new container gets: its build's named volume (mounted read-only
    at /.sbx) and the build's digest (the `sbx.agent` label). See docs/agent.md."""

    volume: str
    digest: str


AGENT_LABEL = "sbx.agent"
AGENT_MOUNT_POINT = "/.sbx"


@dataclass(frozen=True)
class ContainerSpec:
    """Arguments of Docker's create call (`host` goes into the host config)."""

    name: str
    image: str
    command: list[str] | None
    environment: dict[str, str]
    labels: dict[str, str]
    ports: list[int]
    host: dict[str, Any] = field(default_factory=dict)


def container_labels(sandbox: SandboxRecord, instance: str) -> dict[str, str]:
    return {
        labels.PLATFORM: labels.PLATFORM_VALUE,
        labels.INSTANCE: instance,
        labels.SANDBOX_ID: str(sandbox.id),
        labels.OWNER_ID: str(sandbox.owner_id),
        DISK_LABEL: str(sandbox.disk_mib),
    }


def container_spec(
    sandbox: SandboxRecord,
    secrets: dict[str, str],
    settings: OrchestratorSettings,
    features: EngineFeatures | None = None,
    agent: AgentMount | None = None,
    *,
    holder_id: str | None = None,
) -> ContainerSpec:
    """The hardened container of a sandbox. Secrets win over plain variables of the same name.
    With `holder_id` it joins that network holder's namespace (network_holders.py) instead of
    getting one of its own: the holder's namespace already has IPv6 off."""
    features = features or EngineFeatures()
    memory = sandbox.memory_mib * MIB
    root = settings.volumes_root()
    host: dict[str, Any] = {
        "nano_cpus": round(sandbox.cpu * 1e9),
        "mem_limit": memory,
        "memswap_limit": memory,  # the same as memory: no swap
        "pids_limit": settings.sandbox_pids_limit,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        # Only the platform's own mount points of the sandbox's volumes (never a path a user
        # chose; see engine/volumes.py).
        "binds": [
            f"{volume_mount_point(root, v.volume_id)}:{v.mount_path}:{'ro' if v.read_only else 'rw'}"
            for v in sandbox.volumes
        ]
        or None,
        # The agent's named volume (the platform's own, read-only; never a host path).
        "mounts": [Mount(AGENT_MOUNT_POINT, agent.volume, type="volume", read_only=True, no_copy=True)]
        if agent
        else None,
        "init": settings.container_init,
        # The platform's bridge network (no inter-container traffic; see engine/firewall.py).
        "network_mode": network_name(settings.instance),
        # The firewall speaks IPv4: IPv6 (link-local addresses included) is off inside.
        "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"},
        "port_bindings": {
            port.container: {"HostIp": settings.port_bind_host, "HostPort": str(port.host or "")}
            for port in sandbox.ports
        },
        "log_config": {
            "Type": "json-file",
            "Config": {
                "max-size": settings.container_log_max_size,
                "max-file": str(settings.container_log_max_files),
            },
        },
        "ulimits": [
            {"Name": "nofile", "Soft": settings.sandbox_nofile_soft, "Hard": settings.sandbox_nofile_hard},
            {"Name": "nproc", "Soft": settings.sandbox_nproc, "Hard": settings.sandbox_nproc},
        ],
    }
    if holder_id is not None:
        host["network_mode"] = f"container:{holder_id}"
        del host["sysctls"]  # a namespace's sysctls are its owner's to set
    if sandbox.container_runtime != runtimes.RUNC:
        host["runtime"] = runtimes.engine_name(sandbox.container_runtime)
    if settings.sandbox_blkio_weight and features.blkio_weight:
        host["blkio_weight"] = settings.sandbox_blkio_weight
    if features.storage_quota and sandbox.disk_mib:
        host["storage_opt"] = {"size": f"{sandbox.disk_mib}M"}
    return ContainerSpec(
        name=labels.container_name(sandbox.id),
        # A sandbox made from a snapshot runs the snapshot's image with its version's settings.
        image=labels.snapshot_image(sandbox.snapshot_id) if sandbox.snapshot_id else sandbox.image,
        command=sandbox.command,
        environment={**sandbox.env, **secrets},
        labels={
            **container_labels(sandbox, settings.instance),
            **({AGENT_LABEL: agent.digest} if agent else {}),
        },
        ports=[port.container for port in sandbox.ports],
        host=host,
    )


@dataclass(frozen=True)
class ContainerState:
    """The parts of `docker inspect` the orchestrator acts on."""

    id: str
    running: bool  # running and not paused
    exit_code: int
    oom_killed: bool
    health: str | None  # "starting" | "healthy" | "unhealthy", None without a HEALTHCHECK
    paused: bool = False  # running, with its processes frozen

    @property
    def exit_reason(self) -> str:
        reason = f"exited with code {self.exit_code}"
        return f"{reason} (out of memory)" if self.oom_killed else reason


def read_state(info: dict[str, Any]) -> ContainerState:
    state = info.get("State") or {}
    health = state.get("Health") or {}
    return ContainerState(
        id=str(info["Id"]),
        running=bool(state.get("Running")) and not bool(state.get("Paused")),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        health=health.get("Status") or None,
        paused=bool(state.get("Running")) and bool(state.get("Paused")),
    )


def read_address(info: dict[str, Any], network: str) -> str | None:
    """The container's IPv4 address on the platform's network (None when not attached)."""
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    address = (networks.get(network) or {}).get("IPAddress")
    return str(address) if address else None


def read_endpoints(info: dict[str, Any], public_host: str) -> list[dict[str, Any]]:
    """`[{containerPort, hostPort, url}]` from the ports Docker really published."""
    published = (info.get("NetworkSettings") or {}).get("Ports") or {}
    endpoints = []
    for key, bindings in published.items():
        port, _, protocol = key.partition("/")
        if protocol != "tcp" or not bindings:
            continue
        host_port = int(bindings[0]["HostPort"])
        endpoints.append(
            {"containerPort": int(port), "hostPort": host_port, "url": f"http://{public_host}:{host_port}"}
        )
    return sorted(endpoints, key=lambda e: e["containerPort"])
