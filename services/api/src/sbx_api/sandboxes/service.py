"""What the sandbox routes do: validate against state and quotas, record, publish, answer.

Outbox choice (commit, then publish): each lifecycle call commits the sandbox row with its new
`last_command_id`/`last_command_verb` first and publishes the command after, awaiting JetStream's
ack. Publishing inside the open transaction was rejected: the orchestrator could receive the
command before the row is visible and find nothing. When the publish fails, the request takes its
change back (deletes the new row, or restores the previous command) unless the orchestrator took
the command up after all, and answers 503 `UNAVAILABLE`, so the request changed nothing. Should
the database fail too at that moment, the recorded command stays and the reaper's repair loop
re-publishes it (same id, deduplicated by JetStream): nothing is lost either way.

Concurrency: verbs on one sandbox lock its `sandboxes` row (`FOR UPDATE`) for the check and the
update; creates and replicates of one user take a per-user advisory lock for the quota check and
the insert. Two concurrent calls can therefore never both pass a check.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors
from sbx_common.errors import (
    Conflict,
    InvalidState,
    NotFound,
    QuotaExceeded,
    RecordedForLater,
    Unavailable,
)
from sbx_common.logging import trace_id_var
from sbx_common.messages import SandboxCommand
from sbx_common.status import NO_OP, TERMINAL, Verb, is_allowed

from sbx_api.audit import service as audit
from sbx_api.deps import Caller, PendingCaller, caller_query, settled
from sbx_api.environments import repository as environments
from sbx_api.hosts import placement
from sbx_api.pagination import PageParams, split_page, time_id_after, time_id_key
from sbx_api.sandboxes import commands, repository, warm_pool
from sbx_api.sandboxes.schemas import CreateSandboxRequest, ReplicateSandboxRequest, UpdateSandboxRequest
from sbx_api.sandboxes.waiting import SettleWatcher
from sbx_api.snapshots import repository as snapshots
from sbx_api.snapshots.recording import record_snapshot
from sbx_api.state import AppState
from sbx_api.streams import repository as streams
from sbx_api.streams.repository import StoredLine
from sbx_api.volumes import repository as volumes

logger = logging.getLogger(__name__)

TARGET = "sandbox"


@dataclass(frozen=True)
class Outcome:
    """A lifecycle answer: the HTTP status and the sandbox as it then is."""

    status_code: int
    sandbox: repository.SandboxRow


@dataclass(frozen=True)
class Draft:
    """What create and replicate decide for a new sandbox (from its id); the rest is common."""

    version: environments.EnvironmentVersion
    name: str
    env: dict[str, str]
    ttl_seconds: int
    network: dict[str, Any]
    snapshot_id: uuid.UUID | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)
    # Published before the create (a replicate's own snapshot), and taken back with it.
    first: SandboxCommand | None = None
    on_expire: str = "destroy"
    # A create a warm pool's container can serve: no per-sandbox env, volumes or snapshot.
    poolable: bool = False
    # The host it must run on: its snapshot's image is there (a replicate's own snapshot, or
    # the snapshot it is made from).
    host_id: str | None = None


Plan = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[Draft]]
# Takes a change back when its command could not be published: True when it was taken back.
Withdraw = Callable[[asyncpg.Connection], Awaitable[bool]]


# --- reads ------------------------------------------------------------------------------------


async def get(
    state: AppState, caller: Caller | PendingCaller, sandbox_id: uuid.UUID
) -> repository.SandboxRow:
    """The caller's sandbox; for a caller still pending, its lookup, its rate-limit hit and the
    read are one statement, settled (401, 429) before anything is answered."""
    async with state.pool.acquire() as conn:
        caller_row, row = await repository.get_sandbox_as(conn, caller_query(caller), sandbox_id)
    await settled(caller, caller_row)
    if row is None:
        raise NotFound("No such sandbox.")
    return row


async def list_page(
    state: AppState,
    caller: Caller | PendingCaller,
    params: PageParams,
    *,
    statuses: list[str] | None,
    environment_id: uuid.UUID | None,
    metadata: dict[str, str] | None,
) -> tuple[list[repository.SandboxRow], str | None]:
    """Newest first; the cursor carries (createdAt, id) of the page's last sandbox. A caller
    still pending is looked up and counted by the list's own statement."""
    filters = repository.ListFilter(
        statuses=statuses,
        environment_id=environment_id,
        metadata=metadata,
        after=time_id_after(params),
        limit=params.limit + 1,
    )
    async with state.pool.acquire() as conn:
        caller_row, rows = await repository.list_sandboxes(conn, caller_query(caller), filters)
    await settled(caller, caller_row)
    return split_page(rows, params.limit, lambda r: time_id_key(r.created_at, r.id))


async def logs(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, tail: int, since: int | None
) -> list[StoredLine]:
    """The newest `tail` lines, or with `since` the first `tail` after it; oldest first."""
    async with state.pool.acquire() as conn:
        if not await repository.exists(conn, sandbox_id, caller.user_id):
            raise NotFound("No such sandbox.")
        return await streams.log_lines(conn, sandbox_id, after=since, limit=tail)


# --- lifecycle --------------------------------------------------------------------------------


async def create(state: AppState, caller: Caller, body: CreateSandboxRequest, wait: float | None) -> Outcome:
    """A new sandbox from the given (or current) version of one of the caller's environments."""

    async def plan(conn: asyncpg.Connection, sandbox_id: uuid.UUID) -> Draft:
        snapshot_id = body.snapshot_id
        if snapshot_id is not None:
            snapshot = await snapshots.get(conn, snapshot_id, caller.user_id, lock=True)
            if snapshot is None:
                raise NotFound("No such snapshot.")
            if snapshot.status == "failed":
                raise InvalidState(
                    "The snapshot failed; no sandbox can be made from it.",
                    details={"status": snapshot.status, "action": "create"},
                )
            version = await environments.get_version(
                conn, caller.user_id, snapshot.environment_id, snapshot.environment_version, lock=True
            )
            if version is None:
                raise Conflict("The snapshot's environment has been deleted; no sandbox can be made from it.")
            host_id: str | None = snapshot.host_id
        else:
            assert body.environment_id is not None  # one of the two, by the request's validation
            version = await environments.get_version(
                conn, caller.user_id, body.environment_id, body.environment_version, lock=True
            )
            if version is None:
                what = "environment" if body.environment_version is None else "environment version"
                raise NotFound(f"No such {what}.")
            host_id = None
        return Draft(
            version=version,
            name=body.name or "",  # "": named after the environment and the final id
            env={**version.env, **body.env},
            ttl_seconds=body.ttl_seconds,
            network=version.network,
            snapshot_id=snapshot_id,
            volumes=await volumes.mounts_of(conn, caller.user_id, body.volumes),
            on_expire=body.on_expire,
            poolable=snapshot_id is None and not body.env and not body.volumes,
            host_id=host_id,
        )

    return await _make(
        state, caller, action="sandbox.create", source_id=None, metadata=body.metadata, plan=plan, wait=wait
    )


async def replicate(
    state: AppState, caller: Caller, source_id: uuid.UUID, body: ReplicateSandboxRequest, wait: float | None
) -> Outcome:
    """A new sandbox from any source status, destroyed and expired included (the source is only
    read: its environment version and env are copied). 409 `CONFLICT` if the source's
    environment has been deleted since."""

    async def plan(conn: asyncpg.Connection, sandbox_id: uuid.UUID) -> Draft:
        source = await repository.source_for_replica(conn, source_id, caller.user_id)
        if source is None:
            raise NotFound("No such sandbox.")
        version = await environments.get_version(
            conn, caller.user_id, source.environment_id, source.environment_version, lock=True
        )
        if version is None:
            raise Conflict("The source sandbox's environment has been deleted; it cannot be replicated.")
        snapshot_id, first = source.snapshot_id, None
        if body.with_filesystem:
            # A snapshot of its own, hidden: its image goes once the copy's container exists.
            await repository.lock_sandbox(conn, source_id, caller.user_id)
            hidden, first = await record_snapshot(conn, caller, source_id, None, hidden=True)
            snapshot_id = hidden.id
        return Draft(
            version=version,
            name=body.name or f"{source.name[:119]}-{sandbox_id.hex[:8]}",
            env={**source.env, **body.env},
            ttl_seconds=body.ttl_seconds or source.ttl_seconds,
            network=source.network,  # the source's policy as it now is
            snapshot_id=snapshot_id,
            volumes=await volumes.mounts_of(conn, caller.user_id, body.volumes),
            first=first,
            # Its snapshot (its own, or the source's) is on the source's host.
            host_id=source.host_id if snapshot_id is not None else None,
        )

    return await _make(
        state,
        caller,
        action="sandbox.replicate",
        source_id=source_id,
        metadata=body.metadata,
        plan=plan,
        wait=wait,
    )


async def _make(
    state: AppState,
    caller: Caller,
    *,
    action: str,
    source_id: uuid.UUID | None,
    metadata: dict[str, str],
    plan: Plan,
    wait: float | None,
) -> Outcome:
    """Create or replicate: plan the row, check the quotas, insert + audit in one transaction,
    then publish the create command (201, or once settled with ?wait). A replica names its
    source (`source_id`)."""
    sandbox_id = uuid.uuid4()
    async with audited(state, caller, action, source_id or sandbox_id) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            draft = await plan(conn, sandbox_id)
            await _check_quota(state, conn, caller, draft.version)
            host_id: str | None = None
            if draft.poolable:
                # A ready container of the owner's pool for this version, on a host placement may
                # use: its reserved id becomes the sandbox's, its host the sandbox's (the row is
                # gone once this commits; see warm-pools.md).
                usable = await placement.eligible(state, conn, draft.version.runtime)
                claimed = await warm_pool.claim(conn, caller.user_id, draft.version, usable)
                if claimed is not None:
                    sandbox_id, host_id = claimed
            if host_id is None:
                host_id = await _place(state, conn, draft)
            command = _command(Verb.CREATE, sandbox_id, caller, host_id)
            new = repository.NewSandbox(
                id=sandbox_id,
                owner_id=caller.user_id,
                environment_id=draft.version.environment_id,
                environment_version=draft.version.version,
                name=draft.name or f"{draft.version.environment_name}-{sandbox_id.hex[:8]}",
                env=draft.env,
                metadata=metadata,
                ttl_seconds=draft.ttl_seconds,
                command_id=command.id,
                network=draft.network,
                replicated_from=source_id,
                snapshot_id=draft.snapshot_id,
                volumes=draft.volumes,
                on_expire=draft.on_expire,
                host_id=host_id,
            )
            await repository.insert_sandbox(conn, new)
            await attempt.succeeded(conn, target_id=new.id, details=_creation_details(new))
        # Events are watched from here on (the sandbox's id is known only now): still before
        # anything is published, so none is missed.
        async with _watching_new(state, caller, sandbox_id, command, wait) as watcher:
            first = draft.first
            if first is not None and first.snapshot_id is not None:
                hidden_id = first.snapshot_id

                async def withdraw_both(c: asyncpg.Connection) -> bool:
                    withdrawn = await snapshots.withdraw(c, hidden_id)
                    if withdrawn:
                        await repository.withdraw_create(c, sandbox_id, command.id)
                    return withdrawn

                await send(state, first, withdraw=withdraw_both)
            await send(
                state, command, withdraw=lambda c: repository.withdraw_create(c, sandbox_id, command.id)
            )
            return Outcome(201, await _settle(state, caller, sandbox_id, watcher, wait))


async def act(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, verb: Verb, wait: float | None
) -> Outcome:
    """start | stop | restart | destroy, by the state machine of `sbx_common.status`:
    forbidden -> 409 `INVALID_STATE` (nothing published); start on running and stop on stopped
    -> 200 with the sandbox as it is; else record + publish -> 202 in the transitional status."""
    action = f"sandbox.{verb.value}"
    async with (
        audited(state, caller, action, sandbox_id) as attempt,
        _watching(state, caller, sandbox_id, wait) as watcher,
    ):
        async with state.pool.acquire() as conn, conn.transaction():
            locked = await repository.lock_sandbox(conn, sandbox_id, caller.user_id)
            current = await repository.get_sandbox(conn, sandbox_id, caller.user_id) if locked else None
            if current is None:
                raise NotFound("No such sandbox.")
            status = current.status
            if NO_OP.get(verb) == status:
                await attempt.succeeded(conn, details={"from": status.value, "noOp": True})
                return Outcome(200, current)
            if not is_allowed(verb, status) or (current.lost and verb is not Verb.DESTROY):
                raise InvalidState(
                    f"Cannot {verb.value} a sandbox that is {status.value}"
                    + (" (its host was lost; it can only be destroyed)." if current.lost else "."),
                    details={"status": status.value, "action": verb.value},
                )
            command = _command(verb, sandbox_id, caller, current.host_id)
            previous = current.previous_command
            await repository.record_command(conn, sandbox_id, command.id, verb.value)
            await attempt.succeeded(conn, details={"from": status.value, "commandId": str(command.id)})
        await send(
            state,
            command,
            withdraw=lambda c: repository.withdraw_command(c, sandbox_id, command.id, previous),
        )
        return Outcome(202, await _settle(state, caller, sandbox_id, watcher, wait))


async def update_network(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, network: dict[str, Any]
) -> repository.SandboxRow:
    """Record the sandbox's new network policy, then send `network` to the orchestrator, which
    applies what is recorded (so of two quick changes the last one wins whatever the order the
    commands arrive in). Not a lifecycle command: the status is left alone. If the command cannot
    be published the old policy is put back and the answer is 503: nothing changed."""
    async with audited(state, caller, "sandbox.network", sandbox_id) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            locked = await repository.lock_sandbox(conn, sandbox_id, caller.user_id)
            current = await repository.get_sandbox(conn, sandbox_id, caller.user_id) if locked else None
            if current is None:
                raise NotFound("No such sandbox.")
            if current.status in TERMINAL:
                raise InvalidState(
                    f"Cannot change the network of a sandbox that is {current.status.value}.",
                    details={"status": current.status.value, "action": "network"},
                )
            previous = current.network
            await repository.set_network(conn, sandbox_id, network)
            command = _command(Verb.NETWORK, sandbox_id, caller, current.host_id)
            await attempt.succeeded(
                conn,
                details={
                    "egress": network["egress"],
                    "allow": len(network["allow"]),
                    "commandId": str(command.id),
                },
            )
        await send(
            state,
            command,
            withdraw=lambda c: repository.restore_network(c, sandbox_id, network, previous),
        )
        async with state.pool.acquire() as conn:
            row = await repository.get_sandbox(conn, sandbox_id, caller.user_id)
        if row is None:
            raise NotFound("No such sandbox.")
        return row


async def update(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, body: UpdateSandboxRequest
) -> repository.SandboxRow:
    """PATCH: TTL (from now), metadata, `onExpire`. Nothing to send: the reaper reads the new
    `expires_at` at its next sweep (a new TTL is at least 10 s away, longer than a sweep), and
    an expiry it already sent for the old time is refused by the orchestrator, which checks the
    recorded `expires_at` before it acts."""
    changed = sorted(body.model_dump(exclude_none=True, by_alias=True))
    async with audited(state, caller, "sandbox.update", sandbox_id) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            locked = await repository.lock_sandbox(conn, sandbox_id, caller.user_id)
            current = await repository.get_sandbox(conn, sandbox_id, caller.user_id) if locked else None
            if current is None:
                raise NotFound("No such sandbox.")
            if current.status in TERMINAL:
                raise InvalidState(
                    f"Cannot update a sandbox that is {current.status.value}.",
                    details={"status": current.status.value, "action": "update"},
                )
            await repository.update_settings(
                conn,
                sandbox_id,
                ttl_seconds=body.ttl_seconds,
                metadata=body.metadata,
                on_expire=body.on_expire,
            )
            await attempt.succeeded(conn, details={"fields": changed})
            row = await repository.get_sandbox(conn, sandbox_id, caller.user_id)
        if row is None:
            raise NotFound("No such sandbox.")
        return row


def audited(
    state: AppState, caller: Caller, action: str, target_id: uuid.UUID
) -> AbstractAsyncContextManager[audit.Attempt]:
    """The caller's `action` on a sandbox, audited (see `audit.attempt`)."""
    return audit.attempt(
        state.pool, user_id=caller.user_id, action=action, target_type=TARGET, target_id=target_id
    )


def _creation_details(new: repository.NewSandbox) -> dict[str, Any]:
    details: dict[str, Any] = {
        "environmentId": str(new.environment_id),
        "environmentVersion": new.environment_version,
        "commandId": str(new.command_id),
    }
    if new.replicated_from is not None:
        details["replicatedFrom"] = str(new.replicated_from)
    if new.snapshot_id is not None:
        details["snapshotId"] = str(new.snapshot_id)
    if new.volumes:
        details["volumes"] = [v["volumeId"] for v in new.volumes]
    return details


def _command(verb: Verb, sandbox_id: uuid.UUID, caller: Caller, host_id: str) -> SandboxCommand:
    """A command to the orchestrator of the sandbox's host."""
    return SandboxCommand(
        verb=verb,
        sandbox_id=sandbox_id,
        owner_id=caller.user_id,
        trace_id=trace_id_var.get(),
        host_id=host_id,
    )


async def _place(state: AppState, conn: asyncpg.Connection, draft: Draft) -> str:
    """The new sandbox's host (503 when none can take it). Its volumes decide it when they are
    on a host already (their images are there); volumes mounted for the first time then belong
    to the chosen host."""
    required = {draft.host_id} if draft.host_id is not None else set()
    volume_ids = [uuid.UUID(v["volumeId"]) for v in draft.volumes]
    required |= await volumes.hosts_of(conn, volume_ids)
    if len(required) > 1:
        raise Conflict(
            "The sandbox's snapshot and volumes are on different hosts; no sandbox can use them together.",
            details={"hosts": sorted(required)},
        )
    version = draft.version
    need = placement.Need(
        cpu=version.cpu,
        memory_mib=version.memory_mib,
        runtime=version.runtime,
        host_id=next(iter(required), None),
    )
    host_id = await placement.place(state, conn, need)
    if volume_ids:
        await volumes.settle_host(conn, volume_ids, host_id)
    return host_id


async def _check_quota(
    state: AppState, conn: asyncpg.Connection, caller: Caller, version: environments.EnvironmentVersion
) -> None:
    """Sandboxes not terminal, and their CPU and memory totals, per user (429 `QUOTA_EXCEEDED`)."""
    settings = state.settings
    await repository.lock_owner_quota(conn, caller.user_id)
    usage = await repository.usage_of(conn, caller.user_id)
    if usage.sandboxes >= settings.max_sandboxes_per_user:
        raise QuotaExceeded(
            f"Sandbox quota reached: {usage.sandboxes} of {settings.max_sandboxes_per_user} sandboxes"
            " that are not destroyed; destroy one first.",
            details={"quota": "sandboxes", "limit": settings.max_sandboxes_per_user, "used": usage.sandboxes},
        )
    if usage.cpu + version.cpu > settings.max_cpu_per_user + 1e-9:
        raise QuotaExceeded(
            f"CPU quota exceeded: this sandbox needs {version.cpu:g} cores and {usage.cpu:g} of"
            f" {settings.max_cpu_per_user:g} are in use.",
            details={
                "quota": "cpu",
                "limit": settings.max_cpu_per_user,
                "used": usage.cpu,
                "requested": version.cpu,
            },
        )
    if usage.memory_mib + version.memory_mib > settings.max_memory_per_user:
        raise QuotaExceeded(
            f"Memory quota exceeded: this sandbox needs {version.memory_mib} MiB and {usage.memory_mib} of"
            f" {settings.max_memory_per_user} MiB are in use.",
            details={
                "quota": "memory",
                "limit": settings.max_memory_per_user,
                "used": usage.memory_mib,
                "requested": version.memory_mib,
            },
        )


@asynccontextmanager
async def _watching_new(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, command: SandboxCommand, wait: float | None
) -> AsyncIterator[SettleWatcher | None]:
    """`_watching` for a sandbox just recorded: if the bus cannot be subscribed to, the new row
    is taken back, so the 503 changed nothing."""
    try:
        async with _watching(state, caller, sandbox_id, wait) as watcher:
            yield watcher
    except Unavailable:
        async with state.pool.acquire() as conn:
            await repository.withdraw_create(conn, sandbox_id, command.id)
        raise


@asynccontextmanager
async def _watching(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, wait: float | None
) -> AsyncIterator[SettleWatcher | None]:
    """Subscribe to the sandbox's events before anything is published (only with ?wait)."""
    if wait is None:
        yield None
        return
    try:
        watcher = await SettleWatcher.subscribe(state.nc, caller.user_id, sandbox_id)
    except nats.errors.Error as exc:
        raise Unavailable("The message bus is unavailable; nothing was changed.") from exc
    try:
        yield watcher
    finally:
        await watcher.close()


async def send(state: AppState, command: SandboxCommand, withdraw: Withdraw) -> None:
    """Publish the recorded command; if that fails, take the change back and answer 503."""
    try:
        await commands.publish(state.js, command, state.settings.command_publish_timeout_seconds)
    except commands.PublishFailed:
        try:
            async with state.pool.acquire() as conn:
                withdrawn = await withdraw(conn)
        except (asyncpg.PostgresError, OSError):
            logger.warning("command recorded but not published; the reaper will re-publish it")
            raise RecordedForLater(
                "The message bus is unavailable; the request is recorded and will be carried out later."
            ) from None
        if withdrawn:
            raise Unavailable("The message bus is unavailable; nothing was changed.") from None
        # The orchestrator took the command up: it did arrive after all.


async def _settle(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, watcher: SettleWatcher | None, wait: float | None
) -> repository.SandboxRow:
    """The sandbox after the change: at once, or with ?wait once it settled or the wait ran out."""

    async def read() -> repository.SandboxRow | None:
        async with state.pool.acquire() as conn:
            return await repository.get_sandbox(conn, sandbox_id, caller.user_id)

    row = await read() if watcher is None or wait is None else await watcher.until_settled(read, wait)
    if row is None:
        raise NotFound("No such sandbox.")
    return row
