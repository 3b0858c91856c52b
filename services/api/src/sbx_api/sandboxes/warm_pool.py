"""Claiming a warm pool's container for a create (the pools themselves are the orchestrator's:
see services/orchestrator/src/sbx_orchestrator/warm_pool.py and docs/warm-pools.md)."""

from __future__ import annotations

import uuid

import asyncpg

from sbx_api.environments.repository import EnvironmentVersion

# One ready slot of this owner's version, made after the environment last changed (a secret set
# since makes it stale); SKIP LOCKED so two concurrent creates never take the same one, and the
# DELETE commits with the sandbox's INSERT (same id), so a slot is never both pooled and owned.
_CLAIM = """
DELETE FROM warm_pool_slots WHERE id = (
    SELECT s.id FROM warm_pool_slots s JOIN environments e ON e.id = s.environment_id
    WHERE s.owner_id = $1 AND s.environment_id = $2 AND s.environment_version = $3 AND s.ready
      AND s.created_at >= e.updated_at AND s.host_id = ANY($4::text[])
    ORDER BY s.created_at
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED
)
RETURNING id, host_id
"""


async def claim(
    conn: asyncpg.Connection, owner_id: uuid.UUID, version: EnvironmentVersion, hosts: list[str]
) -> tuple[uuid.UUID, str] | None:
    """The reserved sandbox id of a claimed container and the host it runs on (one of `hosts`,
    those placement may use now), or None (the create goes cold). The slot's CPU and memory were
    counted on its host already: the sandbox takes them over."""
    if version.warm_pool <= 0 or not hosts:
        return None
    row = await conn.fetchrow(_CLAIM, owner_id, version.environment_id, version.version, hosts)
    return (row["id"], str(row["host_id"])) if row is not None else None
