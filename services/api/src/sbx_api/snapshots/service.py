"""What the snapshot routes do. The API records the snapshot (`snapshots`) and sends `snapshot`
to the orchestrator, which commits the container's filesystem to the image
`sbx-snapshot-<id>:latest` and records the outcome in `snapshot_runtime`; deleting marks the row
deleted and sends `snapshot_delete` (the orchestrator removes the image). As with sandboxes, a
command that cannot be published takes the change back and answers 503.
"""

from __future__ import annotations

import uuid

import asyncpg
import nats.errors
from sbx_common.errors import Conflict, NotFound, QuotaExceeded, Unavailable
from sbx_common.status import Verb

from sbx_api.audit import service as audit
from sbx_api.deps import Caller
from sbx_api.pagination import PageParams, split_page, time_id_after, time_id_key
from sbx_api.sandboxes import repository as sandboxes
from sbx_api.sandboxes.service import send
from sbx_api.snapshots import repository
from sbx_api.snapshots.recording import command, record_snapshot
from sbx_api.snapshots.repository import SnapshotRow
from sbx_api.snapshots.waiting import SnapshotWatcher
from sbx_api.state import AppState

TARGET = "snapshot"


async def create(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, name: str | None, wait: float | None = None
) -> SnapshotRow:
    """202 `creating`; 429 past `SBX_MAX_SNAPSHOTS_PER_USER`. With `wait` (seconds): the
    snapshot once it is `ready` or `failed`, or as it is when the wait ran out."""
    limit = state.settings.max_snapshots_per_user
    async with audit.attempt(
        state.pool,
        user_id=caller.user_id,
        action="snapshot.create",
        target_type="sandbox",
        target_id=sandbox_id,
    ) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            if not await sandboxes.lock_sandbox(conn, sandbox_id, caller.user_id):
                raise NotFound("No such sandbox.")
            await sandboxes.lock_owner_quota(conn, caller.user_id)
            used = await repository.count(conn, caller.user_id)
            if used >= limit:
                raise QuotaExceeded(
                    f"Snapshot quota reached: {used} of {limit} snapshots; delete one first.",
                    details={"quota": "snapshots", "limit": limit, "used": used},
                )
            new, cmd = await record_snapshot(conn, caller, sandbox_id, name, hidden=False)
            await attempt.succeeded(conn, details={"snapshotId": str(new.id), "commandId": str(cmd.id)})
        watcher = await _watch(state, new.id, wait)
        try:
            await send(state, cmd, withdraw=lambda c: repository.withdraw(c, new.id))
            if watcher is not None and wait is not None:
                row = await watcher.until_settled(lambda: _read(state, caller, new.id), wait)
                if row is not None:
                    return row
        finally:
            if watcher is not None:
                await watcher.close()
    return await get(state, caller, new.id)


async def _watch(state: AppState, snapshot_id: uuid.UUID, wait: float | None) -> SnapshotWatcher | None:
    """Subscribe to the snapshot's note before its command is published (only with ?wait)."""
    if wait is None:
        return None
    try:
        return await SnapshotWatcher.subscribe(state.nc, snapshot_id)
    except nats.errors.Error as exc:
        # Recorded but not published: taken back as a failed publish would be.
        async with state.pool.acquire() as conn:
            await repository.withdraw(conn, snapshot_id)
        raise Unavailable("The message bus is unavailable; nothing was changed.") from exc


async def _read(state: AppState, caller: Caller, snapshot_id: uuid.UUID) -> SnapshotRow | None:
    async with state.pool.acquire() as conn:
        return await repository.get(conn, snapshot_id, caller.user_id)


async def get(state: AppState, caller: Caller, snapshot_id: uuid.UUID) -> SnapshotRow:
    async with state.pool.acquire() as conn:
        row = await repository.get(conn, snapshot_id, caller.user_id)
    if row is None:
        raise NotFound("No such snapshot.")
    return row


async def list_page(
    state: AppState, caller: Caller, params: PageParams, sandbox_id: uuid.UUID | None
) -> tuple[list[SnapshotRow], str | None]:
    async with state.pool.acquire() as conn:
        rows = await repository.list_page(
            conn, caller.user_id, sandbox_id, time_id_after(params), params.limit + 1
        )
    return split_page(rows, params.limit, lambda r: time_id_key(r.created_at, r.id))


async def delete(state: AppState, caller: Caller, snapshot_id: uuid.UUID) -> None:
    """409 `CONFLICT` while a sandbox made from it is not destroyed; else the row is marked
    deleted and the orchestrator removes the image."""
    async with audit.attempt(
        state.pool,
        user_id=caller.user_id,
        action="snapshot.delete",
        target_type=TARGET,
        target_id=snapshot_id,
    ) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            if not await repository.lock_for_delete(conn, snapshot_id, caller.user_id):
                raise NotFound("No such snapshot.")
            users = await repository.in_use(conn, snapshot_id)
            if users:
                raise Conflict(
                    "Sandboxes made from this snapshot are not destroyed; destroy them first.",
                    details={"sandboxes": [str(u) for u in users]},
                )
            row = await repository.get(conn, snapshot_id, caller.user_id)
            if row is None:
                raise NotFound("No such snapshot.")
            await repository.mark_deleted(conn, snapshot_id, True)
            cmd = command(Verb.SNAPSHOT_DELETE, row.sandbox_id, snapshot_id, caller, row.host_id)
            await attempt.succeeded(conn, details={"commandId": str(cmd.id)})

        async def restore(c: asyncpg.Connection) -> bool:
            await repository.mark_deleted(c, snapshot_id, False)
            return True

        await send(state, cmd, withdraw=restore)
