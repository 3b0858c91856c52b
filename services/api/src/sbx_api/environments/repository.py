"""SQL of environments, their immutable versions and their encrypted secrets (written only by the API).

`get_version` is the reader other domains use (e.g. sandbox creation).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sbx_common.crypto import SealedSecret

_ENV_WITH_VERSION = (
    "SELECT e.id, e.owner_id, e.name, e.current_version, e.created_at, e.updated_at,"
    " v.version, v.image, v.cpu, v.memory_mib, v.ports, v.env, v.command, v.network, v.runtime,"
    " v.disk_mib, v.warm_pool,"
    " v.created_at AS version_created_at"
    " FROM environments e JOIN environment_versions v"
    " ON v.environment_id = e.id AND v.version = e.current_version"
)


_VERSION = (
    "SELECT e.id, e.owner_id, e.name, v.version, v.image, v.cpu, v.memory_mib, v.ports, v.env,"
    " v.command, v.network, v.runtime, v.disk_mib, v.warm_pool, v.created_at AS version_created_at"
    " FROM environments e JOIN environment_versions v"
    " ON v.environment_id = e.id AND v.version = COALESCE($3, e.current_version)"
    " WHERE e.id = $1 AND e.owner_id = $2 AND e.deleted_at IS NULL"
)
_VERSION_LOCKED = _VERSION + " FOR SHARE OF e"


@dataclass(frozen=True)
class EnvironmentVersion:
    """One immutable version of a user's environment: what a sandbox is made from."""

    environment_id: uuid.UUID
    environment_name: str
    owner_id: uuid.UUID
    version: int
    image: str
    cpu: float
    memory_mib: int
    ports: list[dict[str, int]]  # [{"container": 80, "host": 8080?}]
    env: dict[str, str]
    command: list[str] | None
    network: dict[str, Any]  # {"egress", "allow"} (sbx_common.network)
    created_at: datetime
    runtime: str = "runc"
    disk_mib: int = 2048
    warm_pool: int = 0

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> EnvironmentVersion:
        return cls(
            environment_id=row["id"],
            environment_name=row["name"],
            owner_id=row["owner_id"],
            version=row["version"],
            image=row["image"],
            cpu=row["cpu"],
            memory_mib=row["memory_mib"],
            ports=list(row["ports"]),
            env=dict(row["env"]),
            command=list(row["command"]) if row["command"] is not None else None,
            network=dict(row["network"]),
            created_at=row["version_created_at"],
            runtime=row["runtime"],
            disk_mib=row["disk_mib"],
            warm_pool=row["warm_pool"],
        )


async def get_version(
    conn: asyncpg.Connection,
    owner_id: uuid.UUID,
    environment_id: uuid.UUID,
    version: int | None = None,
    *,
    lock: bool = False,
) -> EnvironmentVersion | None:
    """A version of the owner's environment (the current one when `version` is None).

    None when the environment is unknown, deleted, someone else's, or has no such version.
    With `lock=True` (inside a transaction) the environment row is held FOR SHARE until the
    transaction ends, so a concurrent DELETE of the environment waits for it and then sees what
    it wrote (e.g. a new sandbox that uses the environment).
    """
    row = await conn.fetchrow(_VERSION_LOCKED if lock else _VERSION, environment_id, owner_id, version)
    return EnvironmentVersion.from_row(row) if row is not None else None


async def lock_owner_environments(conn: asyncpg.Connection, owner_id: uuid.UUID) -> None:
    """Serialise the owner's environment creations until the transaction ends (quota check)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('sbx-env-quota:' || $1::uuid::text, 0))", owner_id
    )


async def count_active(conn: asyncpg.Connection, owner_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM environments WHERE owner_id = $1 AND deleted_at IS NULL", owner_id
    )
    return count


async def insert_environment(
    conn: asyncpg.Connection, environment_id: uuid.UUID, owner_id: uuid.UUID, name: str
) -> None:
    """Raises asyncpg.UniqueViolationError when the owner already has an environment of this name."""
    await conn.execute(
        "INSERT INTO environments (id, owner_id, name, current_version) VALUES ($1, $2, $3, 1)",
        environment_id,
        owner_id,
        name,
    )


async def insert_version(conn: asyncpg.Connection, environment_id: uuid.UUID, spec: dict[str, Any]) -> None:
    """Add an immutable version row. `spec` holds version, image, cpu, memory, ports, env, command,
    network, runtime, disk and warmPool."""
    await conn.execute(
        "INSERT INTO environment_versions"
        " (environment_id, version, image, cpu, memory_mib, ports, env, command, network, runtime,"
        " disk_mib, warm_pool)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        environment_id,
        spec["version"],
        spec["image"],
        spec["cpu"],
        spec["memory"],
        spec["ports"],
        spec["env"],
        spec["command"],
        spec["network"],
        spec["runtime"],
        spec["disk"],
        spec.get("warm_pool", 0),
    )


async def set_current_version(conn: asyncpg.Connection, environment_id: uuid.UUID, version: int) -> None:
    await conn.execute(
        "UPDATE environments SET current_version = $2, updated_at = now() WHERE id = $1",
        environment_id,
        version,
    )


async def touch(conn: asyncpg.Connection, environment_id: uuid.UUID) -> None:
    await conn.execute("UPDATE environments SET updated_at = now() WHERE id = $1", environment_id)


async def get_environment(
    conn: asyncpg.Connection, owner_id: uuid.UUID, environment_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    """The owner's live environment joined with its current version (None if not theirs/deleted)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _ENV_WITH_VERSION
        + " WHERE e.id = $1 AND e.owner_id = $2 AND e.deleted_at IS NULL"
        + (" FOR UPDATE OF e" if for_update else ""),
        environment_id,
        owner_id,
    )
    return row


async def list_environments(
    conn: asyncpg.Connection, owner_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        _ENV_WITH_VERSION + " WHERE e.owner_id = $1 AND e.deleted_at IS NULL"
        " AND ($2::timestamptz IS NULL OR (e.created_at, e.id) > ($2, $3))"
        " ORDER BY e.created_at, e.id LIMIT $4",
        owner_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def list_versions(
    conn: asyncpg.Connection, environment_id: uuid.UUID, *, after: int | None, limit: int
) -> list[asyncpg.Record]:
    """Versions after `after`, oldest first, their fields named as in `VersionOut`."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT version, image, cpu, memory_mib AS memory, ports, env, command, network, runtime,"
        " disk_mib AS disk, warm_pool, created_at"
        " FROM environment_versions"
        " WHERE environment_id = $1 AND ($2::integer IS NULL OR version > $2) ORDER BY version LIMIT $3",
        environment_id,
        after,
        limit,
    )
    return rows


async def has_live_sandboxes(conn: asyncpg.Connection, environment_id: uuid.UUID) -> bool:
    """Whether any sandbox that is not destroyed or expired uses the environment."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM sandbox_view WHERE environment_id = $1"
        " AND status NOT IN ('destroyed', 'expired'))",
        environment_id,
    )
    return found


async def soft_delete(conn: asyncpg.Connection, environment_id: uuid.UUID) -> None:
    """Mark deleted (sandboxes keep their reference) and drop its secrets, now of no use."""
    await conn.execute("DELETE FROM environment_secrets WHERE environment_id = $1", environment_id)
    await conn.execute(
        "UPDATE environments SET deleted_at = now(), updated_at = now() WHERE id = $1", environment_id
    )


# --- secrets ------------------------------------------------------------------------------------


async def secret_keys(
    conn: asyncpg.Connection, environment_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[asyncpg.Record]]:
    """Key names and update times (never values) of the environments' secrets, by environment."""
    rows = await conn.fetch(
        "SELECT environment_id, key, updated_at FROM environment_secrets"
        " WHERE environment_id = ANY($1::uuid[]) ORDER BY key",
        environment_ids,
    )
    found: dict[uuid.UUID, list[asyncpg.Record]] = {env_id: [] for env_id in environment_ids}
    for row in rows:
        found[row["environment_id"]].append(row)
    return found


async def count_secrets_except(conn: asyncpg.Connection, environment_id: uuid.UUID, key: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM environment_secrets WHERE environment_id = $1 AND key <> $2",
        environment_id,
        key,
    )
    return count


async def upsert_secret(
    conn: asyncpg.Connection, environment_id: uuid.UUID, key: str, sealed: SealedSecret
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO environment_secrets (environment_id, key, key_id, nonce, ciphertext)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (environment_id, key) DO UPDATE SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce,"
        " ciphertext = EXCLUDED.ciphertext, updated_at = now()"
        " RETURNING key, updated_at",
        environment_id,
        key,
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
    )
    return row


async def delete_secret(conn: asyncpg.Connection, environment_id: uuid.UUID, key: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM environment_secrets WHERE environment_id = $1 AND key = $2", environment_id, key
    )
    return status.endswith(" 1")


async def sealed_secrets(conn: asyncpg.Connection, environment_id: uuid.UUID) -> dict[str, SealedSecret]:
    """The environment's ciphertexts by key, for whoever decrypts them with `secret_binding`."""
    rows = await conn.fetch(
        "SELECT key, key_id, nonce, ciphertext FROM environment_secrets WHERE environment_id = $1",
        environment_id,
    )
    return {r["key"]: SealedSecret(r["key_id"], bytes(r["nonce"]), bytes(r["ciphertext"])) for r in rows}
