"""Recording a snapshot: shared by the snapshot route and by replicate with `withFilesystem`."""

from __future__ import annotations

import uuid

import asyncpg
from sbx_common.errors import InvalidState, NotFound
from sbx_common.logging import trace_id_var
from sbx_common.messages import SandboxCommand
from sbx_common.status import TERMINAL, Status, Verb

from sbx_api.deps import Caller
from sbx_api.sandboxes import repository as sandboxes
from sbx_api.snapshots import repository
from sbx_api.snapshots.repository import NewSnapshot


def command(
    verb: Verb, sandbox_id: uuid.UUID, snapshot_id: uuid.UUID, caller: Caller, host_id: str
) -> SandboxCommand:
    """To the snapshot's host (its sandbox's: the image is made and kept there)."""
    return SandboxCommand(
        verb=verb,
        sandbox_id=sandbox_id,
        owner_id=caller.user_id,
        snapshot_id=snapshot_id,
        trace_id=trace_id_var.get(),
        host_id=host_id,
    )


async def record_snapshot(
    conn: asyncpg.Connection, caller: Caller, sandbox_id: uuid.UUID, name: str | None, *, hidden: bool
) -> tuple[NewSnapshot, SandboxCommand]:
    """Within the caller's transaction: check the sandbox can be snapshotted (it has a
    container: not destroyed or expired), then insert the snapshot row. The caller holds the
    sandbox's row lock and publishes the command after the commit."""
    current = await sandboxes.get_sandbox(conn, sandbox_id, caller.user_id)
    if current is None:
        raise NotFound("No such sandbox.")
    if current.status in TERMINAL or current.status is Status.DESTROYING:
        raise InvalidState(
            f"Cannot snapshot a sandbox that is {current.status.value}.",
            details={"status": current.status.value, "action": "snapshot"},
        )
    snapshot_id = uuid.uuid4()
    cmd = command(Verb.SNAPSHOT, sandbox_id, snapshot_id, caller, current.host_id)
    new = NewSnapshot(
        id=snapshot_id,
        owner_id=caller.user_id,
        sandbox_id=sandbox_id,
        environment_id=current.environment_id,
        environment_version=current.environment_version,
        name=name or f"{current.name[:119]}-{snapshot_id.hex[:8]}",
        command_id=cmd.id,
        hidden=hidden,
    )
    await repository.insert(conn, new)
    return new, cmd
