"""Response shape of the audit trail."""

from __future__ import annotations

from typing import Any

from sbx_api.schemas import ApiModel, Timestamp


class AuditEvent(ApiModel):
    id: str
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    trace_id: str | None
    details: dict[str, Any]
    occurred_at: Timestamp
