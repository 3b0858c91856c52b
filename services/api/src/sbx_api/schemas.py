"""Base models of every request and response body: camelCase on the wire, strict on input."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, field_validator
from pydantic.alias_generators import to_camel
from sbx_common.timeutil import rfc3339

# RFC 3339 UTC with millisecond precision and a `Z`, the same everywhere in the API.
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def dump(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="json")


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False  # nested models check their own fields


class RequestModel(BaseModel):
    """Request bodies: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # JSON allows "\u0000" but PostgreSQL text does not, and no name, env value or command
        # needs it: refuse it here, with the field's path, rather than fail in the database.
        if _has_nul(value):
            raise ValueError("The value must not contain NUL characters.")
        return value


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """`{"success": true, "data": ...}`: documents the success envelope in the OpenAPI schema."""

    success: Literal[True] = True
    data: T


class PageEnvelope(BaseModel, Generic[T]):
    """A page of a collection: `{"success": true, "data": [...], "nextCursor": ...}`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    success: Literal[True] = True
    data: list[T]
    next_cursor: str | None


class Deleted(ApiModel):
    """Answer of a DELETE: the id of what is gone."""

    id: str
    deleted: Literal[True] = True
