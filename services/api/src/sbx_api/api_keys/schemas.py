"""Request and response bodies of the API keys domain."""

from __future__ import annotations

import uuid

from pydantic import Field, field_validator

from sbx_api.schemas import ApiModel, RequestModel, Timestamp


class CreateApiKeyRequest(RequestModel):
    name: str = Field(min_length=1, max_length=100, examples=["Development Key"])
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="The key stops working (401) this many days from now; omitted: never.",
        examples=[90],
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("The name must not be blank.")
        return value


class ApiKeyOut(ApiModel):
    id: uuid.UUID
    name: str
    key_prefix: str = Field(description="The first characters of the key, to recognise it.")
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None = Field(description="When the key stops working; null: never.")


class CreatedApiKey(ApiModel):
    id: uuid.UUID
    name: str
    key_prefix: str
    key: str = Field(description="The full key (`sk_...`). Returned only once, here.")
    created_at: Timestamp
    expires_at: Timestamp | None = Field(description="When the key stops working; null: never.")
