"""Routes of the environments domain: definitions, their versions, and their secrets."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.environments import service
from sbx_api.environments.schemas import (
    CreateEnvironmentRequest,
    DeletedSecret,
    EnvironmentOut,
    SecretOut,
    SetSecretRequest,
    UpdateEnvironmentRequest,
    VersionOut,
)
from sbx_api.pagination import Page, time_id_key
from sbx_api.responses import ok, page
from sbx_api.schemas import Deleted, Envelope, PageEnvelope

router = APIRouter(prefix="/environments", tags=["environments"])


@router.post("", status_code=201, response_model=Envelope[EnvironmentOut])
async def create_environment(
    body: CreateEnvironmentRequest, caller: CurrentUser, state: State
) -> JSONResponse:
    """Define an environment; this is its version 1."""
    created = await service.create(state, caller.user_id, body)
    return ok(created.dump(), status_code=201)


@router.get("", response_model=PageEnvelope[EnvironmentOut])
async def list_environments(caller: CurrentUser, state: State, params: Page) -> JSONResponse:
    """The caller's environments at their current versions, oldest first."""
    items, next_cursor = await service.list_environments(state, caller.user_id, params)
    return page(
        items,
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )


@router.get("/{environment_id}", response_model=Envelope[EnvironmentOut])
async def get_environment(environment_id: str, caller: CurrentUser, state: State) -> JSONResponse:
    """The environment at its current version, with its secrets' keys (never values)."""
    return ok((await service.get(state, caller.user_id, parse_id(environment_id))).dump())


@router.get("/{environment_id}/versions", response_model=PageEnvelope[VersionOut])
async def list_versions(environment_id: str, caller: CurrentUser, state: State, params: Page) -> JSONResponse:
    """Every version of the environment, oldest first."""
    items, next_cursor = await service.list_versions(state, caller.user_id, parse_id(environment_id), params)
    return page(
        items, next_cursor, max_bytes=state.settings.max_page_bytes, key_of=lambda item: [item.version]
    )


@router.put("/{environment_id}", response_model=Envelope[EnvironmentOut])
async def update_environment(
    environment_id: str, body: UpdateEnvironmentRequest, caller: CurrentUser, state: State
) -> JSONResponse:
    """Add a new version from any subset of the fields; earlier versions never change."""
    updated = await service.update(state, caller.user_id, parse_id(environment_id), body)
    return ok(updated.dump())


@router.delete("/{environment_id}", response_model=Envelope[Deleted])
async def delete_environment(environment_id: str, caller: CurrentUser, state: State) -> JSONResponse:
    """Delete the environment (409 `CONFLICT` while sandboxes that are not destroyed use it)."""
    env_id = parse_id(environment_id)
    await service.delete(state, caller.user_id, env_id)
    return ok(Deleted(id=str(env_id)).dump())


@router.post("/{environment_id}/secrets", status_code=201, response_model=Envelope[SecretOut])
async def set_secret(
    environment_id: str, body: SetSecretRequest, caller: CurrentUser, state: State
) -> JSONResponse:
    """Store a secret encrypted (AES-256-GCM); setting an existing key replaces it."""
    stored = await service.set_secret(state, caller.user_id, parse_id(environment_id), body.key, body.value)
    return ok(stored.dump(), status_code=201)


@router.delete("/{environment_id}/secrets/{key}", response_model=Envelope[DeletedSecret])
async def delete_secret(environment_id: str, key: str, caller: CurrentUser, state: State) -> JSONResponse:
    """Delete a secret; 404 if there is no such key."""
    await service.delete_secret(state, caller.user_id, parse_id(environment_id), key)
    return ok(DeletedSecret(key=key).dump())
