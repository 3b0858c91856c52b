"""Webhooks: a URL, the event types it wants and a secret that signs each delivery. The secret
is shown once and kept sealed with the secrets master key; the webhooks service delivers."""

from __future__ import annotations

import uuid

from sbx_common.errors import NotFound, QuotaExceeded, ValidationFailed
from sbx_common.webhooks import RefusedTarget, check_target, new_secret, secret_binding

from sbx_api.audit import service as audit
from sbx_api.pagination import PageParams, split_page, time_id_after, time_id_key
from sbx_api.state import AppState
from sbx_api.webhooks import repository
from sbx_api.webhooks.schemas import CreatedWebhook, CreateWebhookRequest, DeliveryOut, WebhookOut

TARGET = "webhook"


async def create(state: AppState, owner_id: uuid.UUID, body: CreateWebhookRequest) -> CreatedWebhook:
    try:
        await check_target(body.url, allow_private=state.settings.webhook_allow_private)
    except RefusedTarget as exc:
        raise ValidationFailed.for_field("url", str(exc)) from None
    limit = state.settings.max_webhooks_per_user
    webhook_id = uuid.uuid4()
    secret = new_secret()
    sealed = state.secret_box.seal(secret, secret_binding(webhook_id))
    async with (
        audit.attempt(
            state.pool, user_id=owner_id, action="webhook.create", target_type=TARGET, target_id=webhook_id
        ) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        await repository.lock_owner(conn, owner_id)
        if await repository.count_active(conn, owner_id) >= limit:
            raise QuotaExceeded(f"You have reached the limit of {limit} webhooks.", details={"limit": limit})
        row = await repository.insert(
            conn,
            webhook_id=webhook_id,
            owner_id=owner_id,
            url=body.url,
            events=body.events,
            description=body.description,
            sealed=sealed,
        )
        await attempt.succeeded(conn, details={"url": body.url, "events": body.events})
    return CreatedWebhook(**WebhookOut.model_validate(dict(row)).model_dump(), secret=secret)


async def list_webhooks(
    state: AppState, owner_id: uuid.UUID, page: PageParams
) -> tuple[list[WebhookOut], str | None]:
    after = time_id_after(page)
    async with state.pool.acquire() as conn:
        rows = await repository.list_active(conn, owner_id, after=after, limit=page.limit + 1)
    items, next_cursor = split_page(rows, page.limit, lambda r: time_id_key(r["created_at"], r["id"]))
    return [WebhookOut.model_validate(dict(r)) for r in items], next_cursor


async def delete(state: AppState, owner_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    async with (
        audit.attempt(
            state.pool, user_id=owner_id, action="webhook.delete", target_type=TARGET, target_id=webhook_id
        ) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        if not await repository.mark_deleted(conn, owner_id, webhook_id):
            raise NotFound("No such webhook.")
        await attempt.succeeded(conn)


async def list_deliveries(
    state: AppState, owner_id: uuid.UUID, webhook_id: uuid.UUID, page: PageParams
) -> tuple[list[DeliveryOut], str | None]:
    after = time_id_after(page)
    async with state.pool.acquire() as conn:
        if not await repository.exists(conn, owner_id, webhook_id):
            raise NotFound("No such webhook.")
        rows = await repository.list_deliveries(conn, webhook_id, after=after, limit=page.limit + 1)
    items, next_cursor = split_page(rows, page.limit, lambda r: time_id_key(r["created_at"], r["id"]))
    # A delivery not yet attempted is on its way: the contract shows it as `retrying`.
    return [
        DeliveryOut.model_validate(
            {**dict(r), "status": "retrying" if r["status"] == "pending" else r["status"]}
        )
        for r in items
    ], next_cursor
