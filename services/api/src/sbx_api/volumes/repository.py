"""SQL of the volumes domain. The API writes `volumes` (and the `volumes` a sandbox mounts, in
`sandboxes`); the orchestrator writes `volume_runtime` (bytes in use), read here through a join."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from sbx_common.errors import NotFound

# Sandboxes that are not destroyed or expired and mount the volume `v`.
_ATTACHED = """
ARRAY(SELECT s.id FROM sandboxes s JOIN sandbox_view sv ON sv.id = s.id
      WHERE s.volumes @> jsonb_build_array(jsonb_build_object('volumeId', v.id::text))
        AND sv.status NOT IN ('destroyed', 'expired')
      ORDER BY s.created_at)
"""

_SELECT = (
    "SELECT v.id, v.owner_id, v.name, v.size_mib, v.created_at, COALESCE(r.used_bytes, 0) AS used_bytes, "  # noqa: S608
    "v.host_id, "
    + _ATTACHED
    + " AS attached_to FROM volumes v LEFT JOIN volume_runtime r ON r.volume_id = v.id"
)


class MountRequest(Protocol):
    volume_id: uuid.UUID
    mount_path: str
    read_only: bool


@dataclass(frozen=True)
class VolumeRow:
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    size_mib: int
    created_at: datetime
    used_bytes: int
    host_id: str | None  # where its filesystem image is; None until a sandbox first mounted it
    attached_to: list[uuid.UUID]


async def get(conn: asyncpg.Connection, volume_id: uuid.UUID, owner_id: uuid.UUID) -> VolumeRow | None:
    row = await conn.fetchrow(
        _SELECT + " WHERE v.id = $1 AND v.owner_id = $2 AND v.deleted_at IS NULL", volume_id, owner_id
    )
    return VolumeRow(**dict(row)) if row is not None else None


async def list_page(
    conn: asyncpg.Connection, owner_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[VolumeRow]:
    rows = await conn.fetch(
        _SELECT
        + """
WHERE v.owner_id = $1 AND v.deleted_at IS NULL
  AND ($2::timestamptz IS NULL OR (v.created_at, v.id) < ($2::timestamptz, $3::uuid))
ORDER BY v.created_at DESC, v.id DESC
LIMIT $4""",
        owner_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [VolumeRow(**dict(r)) for r in rows]


async def usage(conn: asyncpg.Connection, owner_id: uuid.UUID) -> tuple[int, int]:
    """How many volumes the user has, and their total size in MiB."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(size_mib), 0) AS mib FROM volumes"
        " WHERE owner_id = $1 AND deleted_at IS NULL",
        owner_id,
    )
    return int(row["n"]), int(row["mib"])


async def name_taken(conn: asyncpg.Connection, owner_id: uuid.UUID, name: str) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM volumes WHERE owner_id = $1 AND name = $2 AND deleted_at IS NULL", owner_id, name
    )
    return bool(found)


async def insert(
    conn: asyncpg.Connection, volume_id: uuid.UUID, owner_id: uuid.UUID, name: str, size_mib: int
) -> None:
    await conn.execute(
        "INSERT INTO volumes (id, owner_id, name, size_mib) VALUES ($1, $2, $3, $4)",
        volume_id,
        owner_id,
        name,
        size_mib,
    )


async def lock_for_delete(conn: asyncpg.Connection, volume_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM volumes WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL FOR UPDATE",
        volume_id,
        owner_id,
    )
    return bool(found)


async def mark_deleted(conn: asyncpg.Connection, volume_id: uuid.UUID, deleted: bool) -> None:
    await conn.execute(
        "UPDATE volumes SET deleted_at = CASE WHEN $2 THEN now() END WHERE id = $1", volume_id, deleted
    )


async def mounts_of(
    conn: asyncpg.Connection, owner_id: uuid.UUID, requested: Sequence[MountRequest]
) -> list[dict[str, Any]]:
    """The stored form of a sandbox's volume mounts, each volume the owner's and not deleted
    (404 otherwise); the volumes are locked (FOR NO KEY UPDATE) so none is deleted before the
    sandbox row is committed, and a volume's first host is decided by one create at a time."""
    mounts: list[dict[str, Any]] = []
    for mount in requested:
        found = await conn.fetchval(
            "SELECT true FROM volumes WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"
            " FOR NO KEY UPDATE",
            mount.volume_id,
            owner_id,
        )
        if not found:
            raise NotFound("No such volume.", details={"volumeId": str(mount.volume_id)})
        mounts.append(
            {"volumeId": str(mount.volume_id), "mountPath": mount.mount_path, "readOnly": mount.read_only}
        )
    return mounts


async def hosts_of(conn: asyncpg.Connection, volume_ids: Sequence[uuid.UUID]) -> set[str]:
    """The hosts the given volumes' images are on (volumes never mounted have none)."""
    rows = await conn.fetch(
        "SELECT DISTINCT host_id FROM volumes WHERE id = ANY($1::uuid[]) AND host_id IS NOT NULL",
        list(volume_ids),
    )
    return {str(r["host_id"]) for r in rows}


async def settle_host(conn: asyncpg.Connection, volume_ids: Sequence[uuid.UUID], host_id: str) -> None:
    """Volumes first mounted now belong to `host_id` (where their image will be made)."""
    await conn.execute(
        "UPDATE volumes SET host_id = $2 WHERE id = ANY($1::uuid[]) AND host_id IS NULL",
        list(volume_ids),
        host_id,
    )
