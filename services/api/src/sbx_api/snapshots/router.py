"""Routes of the snapshots domain (the "Snapshots" part of the contract)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.pagination import Page, time_id_key
from sbx_api.responses import ok, page
from sbx_api.sandboxes import idempotency
from sbx_api.sandboxes.router import WAIT_DEFAULT, IdempotencyKey, WaitTimeout, uuid_filter
from sbx_api.schemas import Deleted, Envelope, PageEnvelope
from sbx_api.snapshots import service
from sbx_api.snapshots.repository import SnapshotRow
from sbx_api.snapshots.schemas import CreateSnapshotRequest, SnapshotOut

router = APIRouter(tags=["snapshots"])

_SNAPSHOT = {"model": Envelope[SnapshotOut]}

SnapshotWait = Annotated[
    bool, Query(description="Answer once the snapshot is `ready` or `failed` (or the timeout passed).")
]


def snapshot_out(row: SnapshotRow) -> SnapshotOut:
    return SnapshotOut(
        id=row.id,
        name=row.name,
        sandbox_id=row.sandbox_id,
        environment_id=row.environment_id,
        environment_version=row.environment_version,
        status=row.status,
        status_reason=row.status_reason,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
    )


@router.post(
    "/sandboxes/{sandbox_id}/snapshots",
    status_code=202,
    response_model=None,
    responses={
        202: {
            **_SNAPSHOT,
            "description": "Accepted: the snapshot, `creating` (with `wait=true`: `ready` or `failed` "
            "once it settled, still `creating` if the timeout passed first).",
        },
        400: {"description": "VALIDATION_ERROR: also an `Idempotency-Key` reused for another request."},
        409: {
            "description": "INVALID_STATE: the sandbox is destroyed or expired. CONFLICT: a request with "
            "the same `Idempotency-Key` is still being carried out."
        },
        429: {"description": "QUOTA_EXCEEDED: SBX_MAX_SNAPSHOTS_PER_USER."},
    },
)
async def create_snapshot(
    sandbox_id: str,
    *,
    request: Request,
    state: State,
    caller: CurrentUser,
    body: Annotated[CreateSnapshotRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
    wait: SnapshotWait = False,
    wait_timeout: WaitTimeout = WAIT_DEFAULT,
) -> JSONResponse:
    """Keep the sandbox's filesystem as it is now (running, paused or stopped; a running
    sandbox is frozen only for the moment of the capture).

    Like the sandbox lifecycle routes, it accepts `?wait=true&timeout=<s>` (default 30, max 300)
    and an `Idempotency-Key` header: a repeat with the same key by the same user returns the
    first answer (header `Idempotent-Replayed: true`) and makes no second snapshot."""
    wanted = body or CreateSnapshotRequest()
    parsed = parse_id(sandbox_id)

    async def action() -> JSONResponse:
        row = await service.create(state, caller, parsed, wanted.name, wait_timeout if wait else None)
        return ok(snapshot_out(row).dump(), 202)

    request_hash = idempotency.fingerprint(request.method, request.url.path, wanted.model_dump(mode="json"))
    return await idempotency.run_once(state.pool, caller.user_id, idempotency_key, request_hash, action)


@router.get("/snapshots", response_model=None, responses={200: {"model": PageEnvelope[SnapshotOut]}})
async def list_snapshots(
    state: State,
    caller: CurrentUser,
    params: Page,
    sandbox_id: Annotated[str | None, Query(alias="sandboxId")] = None,
) -> JSONResponse:
    """The caller's snapshots, newest first (of one sandbox with `sandboxId`)."""
    rows, next_cursor = await service.list_page(state, caller, params, uuid_filter("sandboxId", sandbox_id))
    return page(
        [snapshot_out(r) for r in rows],
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )


@router.get("/snapshots/{snapshot_id}", response_model=None, responses={200: _SNAPSHOT})
async def get_snapshot(snapshot_id: str, state: State, caller: CurrentUser) -> JSONResponse:
    """One snapshot."""
    return ok(snapshot_out(await service.get(state, caller, parse_id(snapshot_id))).dump())


@router.delete(
    "/snapshots/{snapshot_id}",
    response_model=Envelope[Deleted],
    responses={409: {"description": "CONFLICT: a sandbox made from it is not destroyed."}},
)
async def delete_snapshot(snapshot_id: str, state: State, caller: CurrentUser) -> JSONResponse:
    """Delete a snapshot and its image."""
    parsed = parse_id(snapshot_id)
    await service.delete(state, caller, parsed)
    return ok(Deleted(id=str(parsed)).dump())
