"""Settings of the orchestrator (`SBX_*` variables, see `.env.example`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode
from sbx_common.network import parse_cidr
from sbx_common.settings import CryptoSettings


class OrchestratorSettings(CryptoSettings):
    """Where Docker is, how commands are consumed and retried, and how containers are limited."""

    # --- commands (JetStream consumer `orchestrator__commands__<hostId>` on SBX_CMD) ---
    # Seconds JetStream waits for an ack before redelivering. A command being handled sends a
    # progress ack every third of it, so long Docker operations are never redelivered while they
    # run; a crashed orchestrator's commands come back after this delay.
    command_ack_wait: float = Field(default=10.0, ge=1.0)
    # Deliveries of one command before it is given up: the sandbox becomes `failed` and the
    # command goes to SBX_DLQ.
    command_max_deliver: int = Field(default=5, ge=1)
    # Delay before each retry of a failed attempt (a negative ack with this delay); the last value
    # is reused once the list runs out.
    command_retry_delays: list[float] = Field(default=[1.0, 3.0, 10.0, 30.0], min_length=1)
    # Commands handled at once (different sandboxes in parallel; one sandbox's commands in turn).
    command_concurrency: int = Field(default=32, ge=1)
    # On SIGTERM: how long commands already under way may take to finish.
    shutdown_timeout: float = Field(default=10.0, ge=0)

    # --- warm pools (docs/warm-pools.md) ---
    # Seconds between two passes that drain stale pooled containers and make missing ones.
    warm_pool_interval: float = Field(default=0.5, gt=0)
    # Containers made at once by one pass, over all pools.
    warm_pool_concurrency: int = Field(default=4, ge=1)
    # The owner's quotas (the API's `SBX_MAX_*` variables): a pool is filled only while the owner's
    # sandboxes that are not terminal plus pooled containers stay within them.
    max_sandboxes_per_user: int = Field(default=10, ge=0)
    max_cpu_per_user: float = Field(default=16.0, gt=0)
    max_memory_per_user: int = Field(default=32768, gt=0)

    # --- file transfers (docs/files.md, "The bytes' path") ---
    # Where the orchestrator listens for the API's file transfer connections (`host:port`; port
    # 0: any free one). Empty: every transfer's bytes travel on NATS instead. Each connection
    # must show the one-time key of a transfer the API asked for over NATS, so reaching the port
    # is not enough; loopback suits one machine, a host's address an installation of several.
    data_listen: str = "127.0.0.1:0"
    # The address the API is told to connect to (`host:port`), when it differs from the one
    # listened on (a wildcard, or a NAT between them). Empty: the listener's own address.
    data_advertise: str = ""

    # --- containers ---
    sandbox_pids_limit: int = Field(default=256, ge=16)
    # Relative block I/O weight of every sandbox (10-1000; 0: none). Kernels without a weight
    # controller for the disk (cgroup v1 without CFQ/BFQ) make Docker discard it: logged once.
    sandbox_blkio_weight: int = Field(default=500, ge=0, le=1000)
    # Open files per process (soft, hard) and processes per user (RLIMIT_NPROC; root is exempt,
    # the pids limit above bounds every sandbox whatever its user).
    sandbox_nofile_soft: int = Field(default=4096, ge=64)
    sandbox_nofile_hard: int = Field(default=8192, ge=64)
    sandbox_nproc: int = Field(default=2048, ge=16)
    # How often the writable layer of each running sandbox is measured against its `disk` limit
    # (where the engine cannot enforce the limit itself), and how many files one measurement
    # may visit before it asks Docker for the size instead.
    disk_check_interval: float = Field(default=2.0, gt=0)
    disk_walk_max_entries: int = Field(default=200_000, ge=1000)
    # How long the engine's runtimes and storage driver are remembered before being read again.
    engine_info_ttl: float = Field(default=30.0, gt=0)
    # Host address the sandboxes' ports are published on (their URLs use `public_host`, which
    # defaults to the same loopback address): only the host itself reaches them unless the
    # operator publishes them wider.
    port_bind_host: str = "127.0.0.1"
    # Grace period of a stop before Docker kills the container.
    stop_timeout: int = Field(default=10, ge=0)
    # How long a container with a HEALTHCHECK may take to become healthy.
    health_timeout: float = Field(default=120.0, gt=0)
    # Where volumes live on the host: `<volumes_dir>/<volume id>/{fs.img,mnt}` (unset:
    # `/var/lib/sandbox-platform/<instance>/volumes`). Only the platform's own paths are mounted.
    volumes_dir: Path | None = None
    # How long a sandbox made from a snapshot waits for that snapshot's image to be made.
    snapshot_wait_timeout: float = Field(default=120.0, gt=0)
    # Run an init process (docker-init) as PID 1: signals reach the command, zombies are reaped.
    container_init: bool = True
    # Docker's json-file log rotation per container.
    container_log_max_size: str = "20m"
    container_log_max_files: int = Field(default=3, ge=1)

    # --- sandbox networks (see engine/firewall.py and docs/security.md) ---
    # iptables rules in the platform's own chains. Off only where the orchestrator cannot run
    # iptables (then sandboxes are isolated by Docker's bridge settings alone).
    sandbox_firewall: bool = True
    iptables: str = "iptables"  # and `<iptables>-restore`
    # Ranges no sandbox may reach whatever its egress, besides the built-in ones (comma-separated
    # IPv4 CIDRs).
    egress_deny: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where the API's port proxy connects to sandboxes from when it is not on this host's network
    # (comma-separated IPv4 CIDRs, e.g. the API container's address under compose): TCP from
    # them into the sandbox bridge is let through Docker's isolation between networks.
    proxy_sources: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How often the rules are rebuilt from the database and Docker, with allowlist hostnames
    # resolved again.
    egress_refresh_seconds: float = Field(default=30.0, gt=0)
    # Network holders kept ready (docs/network-holders.md): containers holding a network
    # namespace on the sandbox network that a cold create's container joins, so Docker sets up no
    # network on the create's path. 0: every sandbox's container gets its own network as it is
    # made. Needs the agent's binary (a holder runs `sbx-agent hold`).
    network_holders: int = Field(default=4, ge=0, le=64)

    # --- Docker engine ---
    docker_host: str | None = None  # unset: DOCKER_HOST or the local socket
    # Seconds one Docker API call may take (stop and restart add their grace period).
    docker_timeout: float = Field(default=60.0, gt=0)
    docker_threads: int = Field(default=16, ge=1)
    # A pull streams for as long as the download lasts, so it has its own limit.
    image_pull_timeout: float = Field(default=300.0, gt=0)

    # --- exec ---
    exec_threads: int = Field(default=64, ge=1)
    exec_output_limit: int = Field(default=1024 * 1024, ge=1024)  # bytes kept per stream
    exec_max_timeout: float = Field(default=3600.0, gt=0)
    # Fair use: one user runs at most this many commands at once; more wait in the user's own
    # queue (at most SBX_EXEC_QUEUE_PER_USER, for at most SBX_EXEC_QUEUE_TIMEOUT seconds, which
    # do not count against the command's timeout) while other users' commands go ahead.
    exec_threads_per_user: int = Field(default=8, ge=1)
    exec_queue_per_user: int = Field(default=32, ge=0)
    exec_queue_timeout: float = Field(default=30.0, ge=0)
    exec_max_requests: int = Field(default=512, ge=1)  # requests taken at once, running or waiting

    # --- in-sandbox agent (docs/agent.md) ---
    # The static `sbx-agent` binary (`make agent` builds it into .build/agent/sbx-agent). Unset
    # or missing: sandboxes are made without it and exec goes through the Docker exec API.
    agent_binary: Path | None = None
    # How long opening a sandbox's agent session (the persistent exec, the daemon started if
    # needed, a first round trip) may take.
    agent_connect_timeout: float = Field(default=10.0, gt=0)

    # --- background processes (docs/processes.md) ---
    # Running processes one user may have at once, over all their sandboxes (429 past it).
    max_processes_per_user: int = Field(default=16, ge=1)
    # Output kept per process in PostgreSQL: at least the newest this many bytes.
    process_output_keep_bytes: int = Field(default=16 * 1024 * 1024, ge=16 * 1024 * 1024)
    # Unacknowledged output the agent holds per process before it stops reading the process's
    # pipes (the process then waits: backpressure, nothing dropped).
    process_agent_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # How often running processes are checked for a watching session (after a restart, a
    # resume, a broken session) and sandboxes that went away.
    process_reconcile_interval: float = Field(default=1.0, gt=0)

    # --- terminal ---
    # A session with neither input nor output for this long is closed.
    terminal_idle_timeout: float = Field(default=900.0, gt=0)
    # A session whose API side sent nothing (not even a keepalive) for this long is closed.
    terminal_keepalive_timeout: float = Field(default=30.0, gt=0)
    # Hang up an ended session's shell by its host PID. Off: always from inside the container,
    # with another exec, as happens anyway when the PID is not visible or not ours to signal
    # (no host PID namespace, or a non-root orchestrator and a root shell): for such hosts.
    terminal_host_signals: bool = True

    # --- this host in the hosts' registry (docs/scale-out.md) ---
    # What the host offers to sandboxes; unset (0): the engine's CPUs and memory.
    host_cpus: float = Field(default=0.0, ge=0)
    host_memory_mib: int = Field(default=0, ge=0)
    # Free-form `key=value` labels, comma separated, shown by `sbx-admin hosts list`.
    host_labels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # How often the sandboxes the platform gave up while this host was lost are looked for.
    host_reconcile_interval: float = Field(default=5.0, gt=0)

    # How often the consumer's pending count is read for /metrics.
    consumer_metrics_interval: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _soft_under_hard(self) -> OrchestratorSettings:
        if self.sandbox_nofile_soft > self.sandbox_nofile_hard:
            raise ValueError("SBX_SANDBOX_NOFILE_SOFT must not exceed SBX_SANDBOX_NOFILE_HARD")
        return self

    @field_validator("egress_deny", "proxy_sources", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> list[str]:
        entries = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        found = []
        for entry in (str(e).strip() for e in entries):
            if not entry:
                continue
            cidr = parse_cidr(entry)
            if cidr is None:
                raise ValueError(f"not an IPv4 CIDR: {entry!r}")
            found.append(str(cidr))
        return found

    @field_validator("host_labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> dict[str, str]:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        found: dict[str, str] = {}
        for entry in (e.strip() for e in str(value).split(",")):
            if not entry:
                continue
            key, sep, val = entry.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"not a key=value label: {entry!r}")
            found[key.strip()] = val.strip()
        return found

    @field_validator("command_retry_delays")
    @classmethod
    def _non_negative(cls, delays: list[float]) -> list[float]:
        if any(delay < 0 for delay in delays):
            raise ValueError("retry delays must not be negative")
        return delays

    def retry_delay(self, deliveries: int) -> float:
        """Delay before the next attempt, after `deliveries` attempts have failed."""
        index = min(max(deliveries, 1), len(self.command_retry_delays)) - 1
        return self.command_retry_delays[index]

    def volumes_root(self) -> Path:
        return self.volumes_dir or Path("/var/lib/sandbox-platform") / self.instance / "volumes"
