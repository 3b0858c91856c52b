"""Routes of the API keys domain: `POST /api-keys`, `GET /api-keys`, `DELETE /api-keys/:id`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sbx_api.api_keys import service
from sbx_api.api_keys.schemas import ApiKeyOut, CreateApiKeyRequest, CreatedApiKey
from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.pagination import Page, time_id_key
from sbx_api.responses import ok, page
from sbx_api.schemas import Deleted, Envelope, PageEnvelope

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


@router.post("", status_code=201, response_model=Envelope[CreatedApiKey])
async def create_api_key(body: CreateApiKeyRequest, caller: CurrentUser, state: State) -> JSONResponse:
    """Create a key, optionally expiring after `expiresInDays`. The full `key` is in this
    response only; store it now."""
    created = await service.create(state, caller.user_id, body.name, body.expires_in_days)
    return ok(created.dump(), status_code=201)


@router.get("", response_model=PageEnvelope[ApiKeyOut])
async def list_api_keys(caller: CurrentUser, state: State, params: Page) -> JSONResponse:
    """The caller's keys that are not revoked, oldest first (never the key itself)."""
    items, next_cursor = await service.list_keys(state, caller.user_id, params)
    return page(
        items,
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )


@router.delete("/{key_id}", response_model=Envelope[Deleted])
async def delete_api_key(key_id: str, caller: CurrentUser, state: State) -> JSONResponse:
    """Revoke a key: it is rejected (401) from the next request on."""
    parsed = parse_id(key_id)
    await service.revoke(state, caller.user_id, parsed)
    return ok(Deleted(id=str(parsed)).dump())
