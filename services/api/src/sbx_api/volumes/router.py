"""Routes of the volumes domain (the "Volumes" part of the contract)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.pagination import Page, time_id_key
from sbx_api.responses import ok, page
from sbx_api.schemas import Deleted, Envelope, PageEnvelope
from sbx_api.volumes import service
from sbx_api.volumes.repository import VolumeRow
from sbx_api.volumes.schemas import CreateVolumeRequest, VolumeOut

router = APIRouter(prefix="/volumes", tags=["volumes"])

_VOLUME = {"model": Envelope[VolumeOut]}


def volume_out(row: VolumeRow) -> VolumeOut:
    return VolumeOut(
        id=row.id,
        name=row.name,
        sizeMiB=row.size_mib,
        used_bytes=row.used_bytes,
        created_at=row.created_at,
        attached_to=row.attached_to,
    )


@router.post(
    "",
    status_code=201,
    response_model=None,
    responses={
        201: _VOLUME,
        409: {"description": "CONFLICT: the name is taken."},
        429: {"description": "QUOTA_EXCEEDED: SBX_MAX_VOLUMES_PER_USER or SBX_MAX_VOLUME_MIB_PER_USER."},
    },
)
async def create_volume(body: CreateVolumeRequest, state: State, caller: CurrentUser) -> JSONResponse:
    """A named volume of `sizeMiB` (1-102400, default 1024); mount it with `volumes` on create."""
    row = await service.create(state, caller, body.name, body.size_mib)
    return ok(volume_out(row).dump(), 201)


@router.get("", response_model=None, responses={200: {"model": PageEnvelope[VolumeOut]}})
async def list_volumes(state: State, caller: CurrentUser, params: Page) -> JSONResponse:
    """The caller's volumes, newest first."""
    rows, next_cursor = await service.list_page(state, caller, params)
    return page(
        [volume_out(r) for r in rows],
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )


@router.get("/{volume_id}", response_model=None, responses={200: _VOLUME})
async def get_volume(volume_id: str, state: State, caller: CurrentUser) -> JSONResponse:
    """One volume, with the bytes in use and the sandboxes that mount it."""
    return ok(volume_out(await service.get(state, caller, parse_id(volume_id))).dump())


@router.delete(
    "/{volume_id}",
    response_model=Envelope[Deleted],
    responses={409: {"description": "CONFLICT: a sandbox that is not destroyed mounts it."}},
)
async def delete_volume(volume_id: str, state: State, caller: CurrentUser) -> JSONResponse:
    """Delete a volume and its data."""
    parsed = parse_id(volume_id)
    await service.delete(state, caller, parsed)
    return ok(Deleted(id=str(parsed)).dump())
