"""SQL of the ports domain: where a sandbox's ports are (read only; the orchestrator records the
address in `sandbox_runtime`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class SandboxTarget:
    owner_id: uuid.UUID
    status: str  # as the user sees it (sandbox_view)
    address: str | None  # IPv4 on the sandbox bridge while the container runs


async def target(conn: asyncpg.Connection | asyncpg.Pool, sandbox_id: uuid.UUID) -> SandboxTarget | None:
    row = await conn.fetchrow(
        "SELECT v.owner_id, v.status, host(r.address) AS address FROM sandbox_view v"
        " LEFT JOIN sandbox_runtime r ON r.sandbox_id = v.id WHERE v.id = $1",
        sandbox_id,
    )
    if row is None:
        return None
    return SandboxTarget(owner_id=row["owner_id"], status=row["status"], address=row["address"])
