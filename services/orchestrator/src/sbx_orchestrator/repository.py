"""PostgreSQL access of the orchestrator.

It reads what the API wrote (the sandbox, its environment version, the encrypted secrets) and
writes only `sandbox_runtime` (the observed state of each sandbox's container),
`snapshot_runtime` and `volume_runtime` (what became of each snapshot's image and volume).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sbx_common.codes import HOST_LOST
from sbx_common.network import NetworkPolicy
from sbx_common.status import Status, Verb


@dataclass(frozen=True)
class PortSpec:
    container: int
    host: int | None  # None: Docker picks a free host port


@dataclass(frozen=True)
class RuntimeState:
    """The orchestrator's own record of a sandbox (its row in `sandbox_runtime`)."""

    status: Status
    status_reason: str | None
    last_command_id: uuid.UUID | None
    container_id: str | None
    endpoints: list[dict[str, Any]]
    exit_code: int | None


@dataclass(frozen=True)
class VolumeMount:
    """A volume a sandbox mounts (`sandboxes.volumes`, with the volume's size)."""

    volume_id: uuid.UUID
    mount_path: str
    read_only: bool
    size_mib: int


@dataclass(frozen=True)
class SnapshotRecord:
    id: uuid.UUID
    owner_id: uuid.UUID
    sandbox_id: uuid.UUID
    hidden: bool
    deleted: bool
    status: str | None  # snapshot_runtime.status, None before the orchestrator wrote one


@dataclass(frozen=True)
class SandboxRecord:
    """A sandbox with its environment version: everything needed to run its container."""

    id: uuid.UUID
    owner_id: uuid.UUID
    environment_id: uuid.UUID
    environment_version: int
    image: str
    cpu: float
    memory_mib: int
    ports: list[PortSpec]
    env: dict[str, str]  # the version's env, overridden by the sandbox's (no secrets)
    command: list[str] | None
    last_command_id: uuid.UUID
    last_command_verb: Verb
    runtime: RuntimeState | None
    container_runtime: str = "runc"  # the platform's name: "runc" or "gvisor"
    disk_mib: int = 2048
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    snapshot_id: uuid.UUID | None = None  # made from this snapshot: runs its image
    volumes: list[VolumeMount] = field(default_factory=list)
    expires_at: datetime | None = None
    # Its `expires_at` has passed and no TTL stop or pause has spent it yet.
    ttl_due: bool = False
    # Its host was lost and the platform gave it up (`lost_sandboxes`): it never runs again.
    lost: bool = False


@dataclass(frozen=True)
class SandboxState:
    """The little the orchestrator needs to know about a sandbox to record what happened to it."""

    owner_id: uuid.UUID
    last_command_id: uuid.UUID
    runtime: RuntimeState | None


@dataclass(frozen=True)
class SealedSecretRow:
    key: str
    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class ExecTarget:
    owner_id: uuid.UUID
    status: Status  # as the user sees it (sandbox_view)
    container_id: str | None


# The columns of `sandbox_runtime` the orchestrator sets; `write_runtime` accepts only these.
RUNTIME_COLUMNS = frozenset(
    {
        "status",
        "status_reason",
        "container_id",
        "endpoints",
        "address",  # the container's IPv4 address on the sandbox bridge (the API's port proxy)
        "started_at",
        "stopped_at",
        "destroyed_at",
        "exit_code",
        "last_command_id",
        "ttl_applied_for",
    }
)

_SANDBOX_QUERY = """
SELECT s.id, s.owner_id, s.environment_id, s.environment_version, s.env,
       s.last_command_id, s.last_command_verb, s.network, s.snapshot_id, s.volumes, s.expires_at,
       (s.expires_at <= now() AND r.ttl_applied_for IS DISTINCT FROM s.expires_at) AS ttl_due,
       v.image, v.cpu, v.memory_mib, v.ports, v.env AS version_env, v.command,
       v.runtime AS container_runtime, v.disk_mib,
       r.status AS runtime_status, r.status_reason, r.last_command_id AS applied_command_id,
       r.container_id, r.endpoints, r.exit_code,
       EXISTS (SELECT 1 FROM lost_sandboxes l WHERE l.sandbox_id = s.id) AS lost
FROM sandboxes s
LEFT JOIN environment_versions v ON v.environment_id = s.environment_id AND v.version = s.environment_version
LEFT JOIN sandbox_runtime r ON r.sandbox_id = s.id
WHERE s.id = $1
"""


def _runtime(row: asyncpg.Record) -> RuntimeState | None:
    if row["runtime_status"] is None:
        return None
    return RuntimeState(
        status=Status(row["runtime_status"]),
        status_reason=row["status_reason"],
        last_command_id=row["applied_command_id"],
        container_id=row["container_id"],
        endpoints=list(row["endpoints"] or []),
        exit_code=row["exit_code"],
    )


def _ports(raw: list[dict[str, Any]] | None) -> list[PortSpec]:
    specs = []
    for entry in raw or []:
        host = entry.get("host")
        specs.append(
            PortSpec(container=int(entry["container"]), host=int(host) if host is not None else None)
        )
    return specs


def _command(raw: list[Any] | None) -> list[str] | None:
    return [str(part) for part in raw] if raw else None


class Repository:
    def __init__(self, pool: asyncpg.Pool, host_id: str) -> None:
        self.pool = pool
        # The host this orchestrator serves: it reconciles only the sandboxes placed there.
        self.host_id = host_id

    async def load_sandbox(self, sandbox_id: uuid.UUID) -> SandboxRecord | None:
        row = await self.pool.fetchrow(_SANDBOX_QUERY, sandbox_id)
        if row is None:
            return None
        env = {str(k): str(v) for k, v in (row["version_env"] or {}).items()}
        env.update({str(k): str(v) for k, v in (row["env"] or {}).items()})
        return SandboxRecord(
            id=row["id"],
            owner_id=row["owner_id"],
            environment_id=row["environment_id"],
            environment_version=row["environment_version"],
            image=row["image"] or "",  # "" when the version row is missing (see Lifecycle)
            cpu=float(row["cpu"] or 0),
            memory_mib=int(row["memory_mib"] or 0),
            ports=_ports(row["ports"]),
            env=env,
            command=_command(row["command"]),
            last_command_id=row["last_command_id"],
            last_command_verb=Verb(row["last_command_verb"]),
            runtime=_runtime(row),
            container_runtime=row["container_runtime"] or "runc",
            disk_mib=int(row["disk_mib"] or 0),
            network=NetworkPolicy.from_json(row["network"]),
            snapshot_id=row["snapshot_id"],
            volumes=await self._volume_mounts(list(row["volumes"] or [])),
            expires_at=row["expires_at"],
            ttl_due=bool(row["ttl_due"]),
            lost=bool(row["lost"]),
        )

    async def _volume_mounts(self, entries: list[dict[str, Any]]) -> list[VolumeMount]:
        if not entries:
            return []
        sizes = {
            r["id"]: int(r["size_mib"])
            for r in await self.pool.fetch(
                "SELECT id, size_mib FROM volumes WHERE id = ANY($1::uuid[])",
                [uuid.UUID(str(e["volumeId"])) for e in entries],
            )
        }
        mounts = []
        for entry in entries:
            volume_id = uuid.UUID(str(entry["volumeId"]))
            if volume_id in sizes:
                mounts.append(
                    VolumeMount(
                        volume_id=volume_id,
                        mount_path=str(entry["mountPath"]),
                        read_only=bool(entry.get("readOnly", False)),
                        size_mib=sizes[volume_id],
                    )
                )
        return mounts

    # --- snapshots and volumes ---

    async def load_snapshot(self, snapshot_id: uuid.UUID) -> SnapshotRecord | None:
        row = await self.pool.fetchrow(
            "SELECT s.id, s.owner_id, s.sandbox_id, s.hidden, s.deleted_at IS NOT NULL AS deleted,"
            " r.status FROM snapshots s LEFT JOIN snapshot_runtime r ON r.snapshot_id = s.id"
            " WHERE s.id = $1",
            snapshot_id,
        )
        return SnapshotRecord(**dict(row)) if row is not None else None

    async def write_snapshot(
        self, snapshot_id: uuid.UUID, status: str, *, reason: str | None = None, size_bytes: int | None = None
    ) -> None:
        await self.pool.execute(
            "INSERT INTO snapshot_runtime (snapshot_id, status, status_reason, size_bytes)"
            " VALUES ($1, $2, $3, COALESCE($4, 0))"
            " ON CONFLICT (snapshot_id) DO UPDATE SET status = $2, status_reason = $3,"
            " size_bytes = COALESCE($4, snapshot_runtime.size_bytes), updated_at = now()",
            snapshot_id,
            status,
            reason,
            size_bytes,
        )

    async def write_volume(self, volume_id: uuid.UUID, status: str, used_bytes: int | None = None) -> None:
        await self.pool.execute(
            "INSERT INTO volume_runtime (volume_id, status, used_bytes) VALUES ($1, $2, COALESCE($3, 0))"
            " ON CONFLICT (volume_id) DO UPDATE SET status = $2,"
            " used_bytes = COALESCE($3, volume_runtime.used_bytes), updated_at = now()",
            volume_id,
            status,
            used_bytes,
        )

    async def volume_deleted(self, volume_id: uuid.UUID) -> bool:
        deleted: bool | None = await self.pool.fetchval(
            "SELECT deleted_at IS NOT NULL FROM volumes WHERE id = $1", volume_id
        )
        return deleted is not False

    async def network_policies(self, sandbox_ids: list[uuid.UUID]) -> dict[uuid.UUID, NetworkPolicy]:
        """The recorded network policy of each sandbox, and of each warm pool slot its version's
        (the policy the sandbox it becomes will have); an id with neither is absent."""
        rows = await self.pool.fetch(
            "SELECT id, network FROM sandboxes WHERE id = ANY($1::uuid[])"
            " UNION ALL"
            " SELECT s.id, v.network FROM warm_pool_slots s JOIN environment_versions v"
            "   ON v.environment_id = s.environment_id AND v.version = s.environment_version"
            " WHERE s.id = ANY($1::uuid[])",
            sandbox_ids,
        )
        return {r["id"]: NetworkPolicy.from_json(r["network"]) for r in rows}

    async def load_state(self, sandbox_id: uuid.UUID) -> SandboxState | None:
        """Owner, latest API command and runtime of a sandbox, or None when it does not exist."""
        row = await self.pool.fetchrow(
            "SELECT s.owner_id, s.last_command_id, r.status AS runtime_status, r.status_reason,"
            " r.last_command_id AS applied_command_id, r.container_id, r.endpoints, r.exit_code"
            " FROM sandboxes s LEFT JOIN sandbox_runtime r ON r.sandbox_id = s.id WHERE s.id = $1",
            sandbox_id,
        )
        if row is None:
            return None
        return SandboxState(
            owner_id=row["owner_id"], last_command_id=row["last_command_id"], runtime=_runtime(row)
        )

    async def is_superseded(self, sandbox_id: uuid.UUID, command_id: uuid.UUID) -> bool:
        """Whether a newer command was recorded for the sandbox, or its TTL ran out (the
        reaper's expiry command is not recorded in the table: it comes on its own)."""
        superseded: bool | None = await self.pool.fetchval(
            "SELECT last_command_id IS DISTINCT FROM $2 OR active_expires_at <= now()"
            " FROM sandbox_view WHERE id = $1",
            sandbox_id,
            command_id,
        )
        return superseded is not False

    async def load_secrets(self, environment_id: uuid.UUID) -> list[SealedSecretRow]:
        rows = await self.pool.fetch(
            "SELECT key, key_id, nonce, ciphertext FROM environment_secrets WHERE environment_id = $1"
            " ORDER BY key",
            environment_id,
        )
        return [
            SealedSecretRow(r["key"], r["key_id"], bytes(r["nonce"]), bytes(r["ciphertext"])) for r in rows
        ]

    async def sandboxes_in_status(self, statuses: list[Status]) -> list[uuid.UUID]:
        rows = await self.pool.fetch(
            "SELECT r.sandbox_id FROM sandbox_runtime r JOIN sandboxes s ON s.id = r.sandbox_id"
            " WHERE r.status = ANY($1::text[]) AND s.host_id = $2",
            [s.value for s in statuses],
            self.host_id,
        )
        return [r["sandbox_id"] for r in rows]

    async def exec_target(self, sandbox_id: uuid.UUID) -> ExecTarget | None:
        row = await self.pool.fetchrow(
            "SELECT owner_id, status, container_id FROM sandbox_view WHERE id = $1", sandbox_id
        )
        if row is None:
            return None
        return ExecTarget(
            owner_id=row["owner_id"], status=Status(row["status"]), container_id=row["container_id"]
        )

    async def write_runtime(self, sandbox_id: uuid.UUID, **fields: Any) -> None:
        """Insert or update the sandbox's runtime row; columns not given keep their value."""
        unknown = set(fields) - RUNTIME_COLUMNS
        if unknown or "status" not in fields:
            raise ValueError(f"bad runtime columns: {sorted(unknown)}")
        columns = sorted(fields)
        values = [fields[c].value if isinstance(fields[c], Status) else fields[c] for c in columns]
        placeholders = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        # Column names come from RUNTIME_COLUMNS only; every value is a bound parameter.
        sql = (
            f"INSERT INTO sandbox_runtime (sandbox_id, {', '.join(columns)}, updated_at)"  # noqa: S608
            f" VALUES ($1, {placeholders}, now())"
            f" ON CONFLICT (sandbox_id) DO UPDATE SET {updates}, updated_at = now()"
        )
        await self.pool.execute(sql, sandbox_id, *values)

    async def allocations(self) -> tuple[int, float, int]:
        """What is placed on this host: (sandboxes and warm slots, their CPUs, their memory MiB)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n, coalesce(sum(cpu), 0) AS cpu, coalesce(sum(memory_mib), 0) AS memory"
            " FROM ("
            "   SELECT ev.cpu, ev.memory_mib FROM sandbox_view v"
            "   JOIN environment_versions ev"
            "     ON ev.environment_id = v.environment_id AND ev.version = v.environment_version"
            "   WHERE v.host_id = $1 AND v.status NOT IN ('destroyed', 'expired')"
            "   UNION ALL"
            "   SELECT cpu, memory_mib FROM warm_pool_slots WHERE host_id = $1"
            " ) a",
            self.host_id,
        )
        assert row is not None
        return int(row["n"]), float(row["cpu"]), int(row["memory"])

    async def lost_unsettled(self) -> list[uuid.UUID]:
        """This host's sandboxes the platform gave up on while the host was lost whose runtime
        row does not say so yet (their containers may still be here)."""
        rows = await self.pool.fetch(
            "SELECT l.sandbox_id FROM lost_sandboxes l"
            " LEFT JOIN sandbox_runtime r ON r.sandbox_id = l.sandbox_id"
            " WHERE l.host_id = $1 AND COALESCE(r.status_reason, '') <> $2"
            " AND COALESCE(r.status, '') NOT IN ('destroyed', 'expired')",
            self.host_id,
            HOST_LOST,
        )
        return [r["sandbox_id"] for r in rows]
