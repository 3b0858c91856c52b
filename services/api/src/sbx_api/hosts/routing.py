"""Addressing a sandbox's host: every command and request goes to the orchestrator of the host
the sandbox was placed on, read from PostgreSQL for each call (a sandbox never moves, so the read
cannot go stale between it and the request)."""

from __future__ import annotations

import uuid

from sbx_common import subjects

from sbx_api.state import AppState


async def host_of(state: AppState, sandbox_id: uuid.UUID) -> str:
    """The sandbox's host; a sandbox not found is the default host's (the orchestrator then
    answers `NOT_FOUND`, as it always did)."""
    async with state.pool.acquire() as conn:
        host = await conn.fetchval("SELECT host_id FROM sandboxes WHERE id = $1", sandbox_id)
    return str(host) if host is not None else subjects.DEFAULT_HOST


async def rpc_subject(state: AppState, sandbox_id: uuid.UUID, name: str) -> str:
    """The subject of request `name` (`subjects.RPC_*`) for the sandbox's host."""
    return subjects.rpc(await host_of(state, sandbox_id), name)
