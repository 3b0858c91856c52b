"""Base models of every request and response body: camelCase on the wire, strict on input."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel
from sbx_common.timeutil import rfc3339

# RFC 3339 UTC with millisecond precision and a `Z`, the same everywhere in the API.
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def dump(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="json")


class RequestModel(BaseModel):
    """Request bodies: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


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
