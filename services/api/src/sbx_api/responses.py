"""The success envelope of the contract."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from sbx_api.pagination import encode_cursor
from sbx_api.schemas import ApiModel

T = TypeVar("T", bound=ApiModel)


class EnvelopeResponse(JSONResponse):
    """JSON as Starlette writes it; `jsonable_encoder` (a walk of the whole answer in Python,
    about 6 % of an authenticated read's CPU) only when the data holds something JSON cannot
    write as it is (a datetime, a UUID, a model). Data from `ApiModel.dump()` never does."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except TypeError:
            return super().render(jsonable_encoder(content))


def ok(data: Any, status_code: int = 200) -> JSONResponse:
    return EnvelopeResponse({"success": True, "data": data}, status_code=status_code)


def page(
    items: Sequence[T],
    next_cursor: str | None,
    *,
    max_bytes: int,
    key_of: Callable[[T], list[Any]],
) -> JSONResponse:
    """A page of a collection, each item in its wire form. The page is also capped by size: once
    its items pass `max_bytes` of JSON (SBX_MAX_PAGE_BYTES) it ends there, with the cursor of its
    last item (`key_of` gives an item's keyset key), so no answer grows without bound. The first
    item is always given, so paging always moves forward."""
    data: list[Any] = []
    size = 0
    for index, item in enumerate(items):
        encoded = jsonable_encoder(item.dump())
        size += len(json.dumps(encoded, separators=(",", ":"), ensure_ascii=False).encode())
        if data and size > max_bytes:
            next_cursor = encode_cursor(key_of(items[index - 1]))
            break
        data.append(encoded)
    return JSONResponse({"success": True, "data": data, "nextCursor": next_cursor})
