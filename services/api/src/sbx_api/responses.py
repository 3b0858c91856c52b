"""The success envelope of the contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from sbx_api.schemas import ApiModel


def ok(data: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": jsonable_encoder(data)}, status_code=status_code)


def page(items: Sequence[ApiModel], next_cursor: str | None) -> JSONResponse:
    """A page of a collection, each item in its wire form."""
    data = jsonable_encoder([item.dump() for item in items])
    return JSONResponse({"success": True, "data": data, "nextCursor": next_cursor})
