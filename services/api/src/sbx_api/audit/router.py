"""Routes of the audit domain: `GET /audit`, the caller's own trail."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sbx_api.audit import service
from sbx_api.audit.schemas import AuditEvent
from sbx_api.deps import CurrentUser, State
from sbx_api.pagination import Page
from sbx_api.responses import page
from sbx_api.schemas import PageEnvelope

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=PageEnvelope[AuditEvent])
async def list_audit_events(caller: CurrentUser, state: State, params: Page) -> JSONResponse:
    """What was done with the caller's account (including refused attempts), newest first."""
    items, next_cursor = await service.list_events(state.pool, caller.user_id, params)
    return page(
        items, next_cursor, max_bytes=state.settings.max_page_bytes, key_of=lambda item: [int(item.id)]
    )
