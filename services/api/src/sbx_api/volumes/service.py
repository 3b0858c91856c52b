"""What the volume routes do. A volume is a row here until a sandbox first mounts it: the
orchestrator (the only service that touches the host) makes its filesystem image and mounts it
when a sandbox using it is created. Deleting marks the row deleted and sends `volume_delete`
(the orchestrator unmounts it and removes the image); a command that cannot be published takes
the change back and answers 503.
"""

from __future__ import annotations

import uuid

import asyncpg
from sbx_common.errors import Conflict, NotFound, QuotaExceeded
from sbx_common.logging import trace_id_var
from sbx_common.messages import SandboxCommand
from sbx_common.status import Verb

from sbx_api.audit import service as audit
from sbx_api.deps import Caller
from sbx_api.pagination import PageParams, split_page, time_id_after, time_id_key
from sbx_api.sandboxes.repository import lock_owner_quota
from sbx_api.sandboxes.service import send
from sbx_api.state import AppState
from sbx_api.volumes import repository
from sbx_api.volumes.repository import VolumeRow

TARGET = "volume"


async def create(state: AppState, caller: Caller, name: str, size_mib: int) -> VolumeRow:
    """201; 409 `CONFLICT` for a name the caller already uses; 429 past the count or size quota."""
    settings = state.settings
    volume_id = uuid.uuid4()
    async with (
        audit.attempt(
            state.pool,
            user_id=caller.user_id,
            action="volume.create",
            target_type=TARGET,
            target_id=volume_id,
        ) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        await lock_owner_quota(conn, caller.user_id)
        if await repository.name_taken(conn, caller.user_id, name):
            raise Conflict("You already have a volume of this name.", details={"field": "name"})
        count, mib = await repository.usage(conn, caller.user_id)
        if count >= settings.max_volumes_per_user:
            raise QuotaExceeded(
                f"Volume quota reached: {count} of {settings.max_volumes_per_user} volumes.",
                details={"quota": "volumes", "limit": settings.max_volumes_per_user, "used": count},
            )
        if mib + size_mib > settings.max_volume_mib_per_user:
            raise QuotaExceeded(
                f"Volume size quota exceeded: {size_mib} MiB asked, {mib} of"
                f" {settings.max_volume_mib_per_user} MiB in use.",
                details={
                    "quota": "volumeMiB",
                    "limit": settings.max_volume_mib_per_user,
                    "used": mib,
                    "requested": size_mib,
                },
            )
        await repository.insert(conn, volume_id, caller.user_id, name, size_mib)
        await attempt.succeeded(conn, details={"name": name, "sizeMiB": size_mib})
    return await get(state, caller, volume_id)


async def get(state: AppState, caller: Caller, volume_id: uuid.UUID) -> VolumeRow:
    async with state.pool.acquire() as conn:
        row = await repository.get(conn, volume_id, caller.user_id)
    if row is None:
        raise NotFound("No such volume.")
    return row


async def list_page(
    state: AppState, caller: Caller, params: PageParams
) -> tuple[list[VolumeRow], str | None]:
    async with state.pool.acquire() as conn:
        rows = await repository.list_page(conn, caller.user_id, time_id_after(params), params.limit + 1)
    return split_page(rows, params.limit, lambda r: time_id_key(r.created_at, r.id))


async def delete(state: AppState, caller: Caller, volume_id: uuid.UUID) -> None:
    """409 `CONFLICT` while a sandbox that is not destroyed mounts it."""
    async with audit.attempt(
        state.pool, user_id=caller.user_id, action="volume.delete", target_type=TARGET, target_id=volume_id
    ) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            if not await repository.lock_for_delete(conn, volume_id, caller.user_id):
                raise NotFound("No such volume.")
            row = await repository.get(conn, volume_id, caller.user_id)
            if row is None:
                raise NotFound("No such volume.")
            if row.attached_to:
                raise Conflict(
                    "Sandboxes that are not destroyed mount this volume; destroy them first.",
                    details={"sandboxes": [str(s) for s in row.attached_to]},
                )
            await repository.mark_deleted(conn, volume_id, True)
            if row.host_id is None:
                # Never mounted: no host made its image, there is nothing to remove.
                await attempt.succeeded(conn, details={})
                return
            # `sandbox_id` is the volume's id: the orchestrator serialises commands per id.
            cmd = SandboxCommand(
                verb=Verb.VOLUME_DELETE,
                sandbox_id=volume_id,
                owner_id=caller.user_id,
                volume_id=volume_id,
                trace_id=trace_id_var.get(),
                host_id=row.host_id,
            )
            await attempt.succeeded(conn, details={"commandId": str(cmd.id)})

        async def restore(c: asyncpg.Connection) -> bool:
            await repository.mark_deleted(c, volume_id, False)
            return True

        await send(state, cmd, withdraw=restore)
