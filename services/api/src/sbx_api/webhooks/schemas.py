"""Request and response bodies of the webhooks domain."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, field_validator
from sbx_common.webhooks import EVENT_TYPES

from sbx_api.schemas import ApiModel, RequestModel, Timestamp


class CreateWebhookRequest(RequestModel):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/hooks/sbx"])
    events: list[str] = Field(
        min_length=1,
        max_length=32,
        description="`sandbox.*` (every event) or event types such as `sandbox.running`.",
        examples=[["sandbox.running", "sandbox.failed"]],
    )
    description: str | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"Unknown event types: {', '.join(sorted(unknown))[:200]}.")
        return list(dict.fromkeys(value))


class WebhookOut(ApiModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    created_at: Timestamp


class CreatedWebhook(WebhookOut):
    secret: str = Field(
        description="Signs every delivery (`Sbx-Signature`). Returned only once, here; store it now."
    )


class DeliveryOut(ApiModel):
    id: uuid.UUID
    event_id: str = Field(description="The event's `id`, also sent as `Sbx-Event-Id`.")
    status: Literal["delivered", "retrying", "failed"]
    attempts: int
    response_status: int | None = Field(description="The HTTP status of the last attempt, if any.")
    last_attempt_at: Timestamp | None
    created_at: Timestamp = Field(description="When the event was taken up for this webhook.")
