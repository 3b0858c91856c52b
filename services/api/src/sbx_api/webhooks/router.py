"""Routes of the webhooks domain: `POST /webhooks`, `GET /webhooks`, `DELETE /webhooks/:id`,
`GET /webhooks/:id/deliveries`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.pagination import Page, time_id_key
from sbx_api.responses import ok, page
from sbx_api.schemas import Deleted, Envelope, PageEnvelope
from sbx_api.webhooks import service
from sbx_api.webhooks.schemas import CreatedWebhook, CreateWebhookRequest, DeliveryOut, WebhookOut

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=Envelope[CreatedWebhook])
async def create_webhook(body: CreateWebhookRequest, caller: CurrentUser, state: State) -> JSONResponse:
    """Deliver the caller's sandbox events of the given types to `url` (http or https; loopback,
    private and link-local addresses are refused). The `secret` is in this response only."""
    created = await service.create(state, caller.user_id, body)
    return ok(created.dump(), status_code=201)


@router.get("", response_model=PageEnvelope[WebhookOut])
async def list_webhooks(caller: CurrentUser, state: State, params: Page) -> JSONResponse:
    """The caller's webhooks, oldest first (never their secret)."""
    items, next_cursor = await service.list_webhooks(state, caller.user_id, params)
    return page(
        items,
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )


@router.delete("/{webhook_id}", response_model=Envelope[Deleted])
async def delete_webhook(webhook_id: str, caller: CurrentUser, state: State) -> JSONResponse:
    """Delete a webhook: nothing more is delivered to it, retries included."""
    parsed = parse_id(webhook_id)
    await service.delete(state, caller.user_id, parsed)
    return ok(Deleted(id=str(parsed)).dump())


@router.get("/{webhook_id}/deliveries", response_model=PageEnvelope[DeliveryOut])
async def list_webhook_deliveries(
    webhook_id: str, caller: CurrentUser, state: State, params: Page
) -> JSONResponse:
    """The webhook's deliveries, oldest first: one per event, with its attempts so far."""
    items, next_cursor = await service.list_deliveries(state, caller.user_id, parse_id(webhook_id), params)
    return page(
        items,
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )
