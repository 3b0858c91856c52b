"""SQL of the sandboxes domain. Reads go through `sandbox_view` (the status a user sees); the API
writes only `sandboxes` (desired state + last command) and `idempotency_keys`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sbx_common.status import Status

from sbx_api.auth.repository import CallerQuery, joined

# Namespace of the per-user advisory lock that serialises quota checks with the inserts.
QUOTA_LOCK_NAMESPACE = 0x5B8_0002

_SANDBOX_SELECT = """
SELECT v.id, v.owner_id, v.name, v.environment_id, v.environment_version, v.status,
       v.status_reason,
       COALESCE((SELECT 'sbx-snapshot-' || n.snapshot_id || ':latest'
                 FROM sandboxes n WHERE n.id = v.id AND n.snapshot_id IS NOT NULL),
                ev.image) AS image, ev.cpu, ev.memory_mib, ev.runtime, ev.disk_mib, v.env, v.metadata,
       v.endpoints,
       v.created_at, v.started_at, v.stopped_at, v.active_expires_at AS expires_at, v.destroyed_at,
       v.ttl_seconds, v.on_expire,
       v.last_command_id, v.last_command_verb, v.last_command_at,
       (SELECT n.network FROM sandboxes n WHERE n.id = v.id) AS network, v.host_id,
       v.lost_at IS NOT NULL AS lost
FROM sandbox_view v
JOIN environment_versions ev
  ON ev.environment_id = v.environment_id AND ev.version = v.environment_version
"""


@dataclass(frozen=True)
class SandboxRow:
    """A sandbox as its owner sees it (`sandbox_view`), with its environment version's image and
    limits, and the last command the API sent."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    environment_id: uuid.UUID
    environment_version: int
    status: Status
    status_reason: str | None
    image: str
    cpu: float
    memory_mib: int
    runtime: str
    disk_mib: int
    env: dict[str, str]
    metadata: dict[str, str]
    endpoints: list[dict[str, Any]]  # [{"containerPort", "hostPort", "url"}]
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    expires_at: datetime | None  # None once a TTL stop or pause spent it
    destroyed_at: datetime | None
    ttl_seconds: int
    on_expire: str
    last_command_id: uuid.UUID
    last_command_verb: str
    last_command_at: datetime
    network: dict[str, Any]  # the current policy {"egress", "allow"} (sbx_common.network)
    host_id: str  # the Docker host it is placed on (docs/scale-out.md)
    lost: bool  # its host stopped heartbeating and the platform gave it up (`host lost`)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SandboxRow:
        """`row` holds the columns of `_SANDBOX_SELECT`, named as this class's fields (and
        possibly others, which are left out)."""
        return cls(**{**{name: row[name] for name in _FIELDS}, "status": Status(row["status"])})

    @property
    def previous_command(self) -> tuple[uuid.UUID, str, datetime]:
        """The last command as `withdraw_command` puts it back."""
        return self.last_command_id, self.last_command_verb, self.last_command_at


_FIELDS = tuple(SandboxRow.__dataclass_fields__)


@dataclass(frozen=True)
class ReplicaSource:
    """What a replica copies from its source sandbox."""

    id: uuid.UUID
    name: str
    environment_id: uuid.UUID
    environment_version: int
    env: dict[str, str]
    ttl_seconds: int
    network: dict[str, Any]
    host_id: str
    snapshot_id: uuid.UUID | None = None


@dataclass(frozen=True)
class NewSandbox:
    id: uuid.UUID
    owner_id: uuid.UUID
    environment_id: uuid.UUID
    environment_version: int
    name: str
    env: dict[str, str]
    metadata: dict[str, str]
    ttl_seconds: int
    command_id: uuid.UUID
    network: dict[str, Any]
    replicated_from: uuid.UUID | None = None
    snapshot_id: uuid.UUID | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)  # [{"volumeId", "mountPath", "readOnly"}]
    on_expire: str = "destroy"
    host_id: str = "local"  # chosen by placement


@dataclass(frozen=True)
class Usage:
    sandboxes: int
    cpu: float
    memory_mib: int


@dataclass(frozen=True)
class ListFilter:
    statuses: list[str] | None  # None: every status but destroyed and expired
    environment_id: uuid.UUID | None
    metadata: dict[str, str] | None  # jsonb containment
    after: tuple[datetime, uuid.UUID] | None  # keyset: (created_at, id) of the previous page's last
    limit: int


async def get_sandbox(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID
) -> SandboxRow | None:
    row = await conn.fetchrow(_SANDBOX_SELECT + " WHERE v.id = $1 AND v.owner_id = $2", sandbox_id, owner_id)
    return SandboxRow.from_row(row) if row is not None else None


async def get_sandbox_as(
    conn: asyncpg.Connection, caller: CallerQuery, sandbox_id: uuid.UUID
) -> tuple[asyncpg.Record | None, SandboxRow | None]:
    """`get_sandbox` and the caller's row (`CallerQuery`: who, whether the credentials are
    good, the rate-limit hit; `auth.repository.known_caller` for a caller already let in) in one
    round trip. The sandbox is read only for a caller let in."""
    row = await conn.fetchrow(
        joined(caller, _SANDBOX_SELECT + " WHERE v.id = $1 AND v.owner_id = c.caller_id"),
        *caller.args,
        sandbox_id,
    )
    if row is None or row["id"] is None:
        return row, None
    return row, SandboxRow.from_row(row)


_LIST = (
    _SANDBOX_SELECT
    + """
WHERE v.owner_id = c.caller_id
  AND (CASE WHEN $1::text[] IS NULL THEN v.status NOT IN ('destroyed', 'expired')
            ELSE v.status = ANY($1::text[]) END)
  AND ($2::uuid IS NULL OR v.environment_id = $2)
  AND ($3::jsonb IS NULL OR v.metadata @> $3::jsonb)
  AND ($4::timestamptz IS NULL OR (v.created_at, v.id) < ($4::timestamptz, $5::uuid))
ORDER BY v.created_at DESC, v.id DESC
LIMIT $6"""
)


async def list_sandboxes(
    conn: asyncpg.Connection, caller: CallerQuery, f: ListFilter
) -> tuple[asyncpg.Record | None, list[SandboxRow]]:
    """The caller's sandboxes, newest first, keyset-paginated on (created_at, id), with the
    caller's row (`CallerQuery`; `auth.repository.known_caller` for a caller already let in):
    one round trip, and nothing read for a caller refused."""
    rows = await conn.fetch(
        joined(caller, _LIST),
        *caller.args,
        f.statuses,
        f.environment_id,
        f.metadata,
        f.after[0] if f.after else None,
        f.after[1] if f.after else None,
        f.limit,
    )
    return (rows[0] if rows else None), [SandboxRow.from_row(r) for r in rows if r["id"] is not None]


async def lock_owner_quota(conn: asyncpg.Connection, owner_id: uuid.UUID) -> None:
    """Serialise this user's creates until the transaction ends, so quota checks cannot race."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))", QUOTA_LOCK_NAMESPACE, str(owner_id)
    )


async def usage_of(conn: asyncpg.Connection, owner_id: uuid.UUID) -> Usage:
    """Count, CPU and memory of the user's sandboxes that are not terminal."""
    row = await conn.fetchrow(
        """
SELECT count(*) AS n, COALESCE(sum(ev.cpu), 0) AS cpu, COALESCE(sum(ev.memory_mib), 0) AS memory
FROM sandbox_view v
JOIN environment_versions ev
  ON ev.environment_id = v.environment_id AND ev.version = v.environment_version
WHERE v.owner_id = $1 AND v.status NOT IN ('destroyed', 'expired')""",
        owner_id,
    )
    return Usage(sandboxes=int(row["n"]), cpu=float(row["cpu"]), memory_mib=int(row["memory"]))


async def insert_sandbox(conn: asyncpg.Connection, s: NewSandbox) -> None:
    await conn.execute(
        """
INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, env, metadata,
                       ttl_seconds, expires_at, last_command_id, last_command_verb, replicated_from,
                       network, on_expire, snapshot_id, volumes, host_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $8::int), $9, 'create', $10, $11,
        $12, $13, $14, $15)""",
        s.id,
        s.owner_id,
        s.environment_id,
        s.environment_version,
        s.name,
        s.env,
        s.metadata,
        s.ttl_seconds,
        s.command_id,
        s.replicated_from,
        s.network,
        s.on_expire,
        s.snapshot_id,
        s.volumes,
        s.host_id,
    )


async def lock_sandbox(conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    """Row-lock the user's sandbox until the transaction ends (concurrent verbs queue here)."""
    found = await conn.fetchval(
        "SELECT true FROM sandboxes WHERE id = $1 AND owner_id = $2 FOR UPDATE", sandbox_id, owner_id
    )
    return bool(found)


async def record_command(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, command_id: uuid.UUID, verb: str
) -> None:
    await conn.execute(
        "UPDATE sandboxes SET last_command_id = $2, last_command_verb = $3, last_command_at = now()"
        " WHERE id = $1",
        sandbox_id,
        command_id,
        verb,
    )


async def withdraw_create(conn: asyncpg.Connection, sandbox_id: uuid.UUID, command_id: uuid.UUID) -> bool:
    """Remove a sandbox whose create command could not be published, unless the orchestrator
    took it up after all. True when the row was removed."""
    deleted = await conn.fetchval(
        """
DELETE FROM sandboxes s WHERE s.id = $1 AND s.last_command_id = $2
  AND NOT EXISTS (SELECT 1 FROM sandbox_runtime r WHERE r.sandbox_id = $1)
RETURNING true""",
        sandbox_id,
        command_id,
    )
    return bool(deleted)


async def withdraw_command(
    conn: asyncpg.Connection,
    sandbox_id: uuid.UUID,
    command_id: uuid.UUID,
    previous: tuple[uuid.UUID, str, datetime],
) -> bool:
    """Put back the previous command when ours could not be published, unless the orchestrator
    took ours up after all. True when the previous command was restored."""
    restored = await conn.fetchval(
        """
UPDATE sandboxes s SET last_command_id = $3, last_command_verb = $4, last_command_at = $5
WHERE s.id = $1 AND s.last_command_id = $2
  AND NOT EXISTS (SELECT 1 FROM sandbox_runtime r WHERE r.sandbox_id = $1 AND r.last_command_id = $2)
RETURNING true""",
        sandbox_id,
        command_id,
        *previous,
    )
    return bool(restored)


async def source_for_replica(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID
) -> ReplicaSource | None:
    """What a replica copies from the owner's sandbox, of any status (None: no such sandbox)."""
    row = await conn.fetchrow(
        "SELECT s.id, s.name, s.environment_id, s.environment_version, s.env, s.ttl_seconds, s.network,"
        " s.host_id,"
        " (SELECT p.id FROM snapshots p WHERE p.id = s.snapshot_id AND NOT p.hidden AND p.deleted_at IS NULL)"
        " AS snapshot_id FROM sandboxes s WHERE s.id = $1 AND s.owner_id = $2",
        sandbox_id,
        owner_id,
    )
    return ReplicaSource(**dict(row)) if row is not None else None


async def exists(conn: asyncpg.Connection, sandbox_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM sandboxes WHERE id = $1 AND owner_id = $2", sandbox_id, owner_id
    )
    return bool(found)


async def set_network(conn: asyncpg.Connection, sandbox_id: uuid.UUID, network: dict[str, Any]) -> None:
    """Record the sandbox's network policy (the orchestrator applies what is recorded here)."""
    await conn.execute("UPDATE sandboxes SET network = $2 WHERE id = $1", sandbox_id, network)


async def restore_network(
    conn: asyncpg.Connection, sandbox_id: uuid.UUID, ours: dict[str, Any], previous: dict[str, Any]
) -> bool:
    """Put the previous policy back when the change could not be sent, unless another change
    was recorded meanwhile. True when it was put back."""
    restored = await conn.fetchval(
        "UPDATE sandboxes SET network = $3 WHERE id = $1 AND network = $2 RETURNING true",
        sandbox_id,
        ours,
        previous,
    )
    return bool(restored)


async def update_settings(
    conn: asyncpg.Connection,
    sandbox_id: uuid.UUID,
    *,
    ttl_seconds: int | None,
    metadata: dict[str, str] | None,
    on_expire: str | None,
) -> None:
    """PATCH: a TTL counted from now (a new `expires_at`), metadata replaced, `onExpire`; a None
    leaves that column as it is."""
    await conn.execute(
        """
UPDATE sandboxes SET
    ttl_seconds = COALESCE($2::int, ttl_seconds),
    expires_at = CASE WHEN $2::int IS NULL THEN expires_at ELSE now() + make_interval(secs => $2::int) END,
    metadata = COALESCE($3::jsonb, metadata),
    on_expire = COALESCE($4::text, on_expire)
WHERE id = $1""",
        sandbox_id,
        ttl_seconds,
        metadata,
        on_expire,
    )
