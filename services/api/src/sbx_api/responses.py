"""The success envelope of the contract."""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse


def ok(data: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": jsonable_encoder(data)}, status_code=status_code)


def page(items: list[Any], next_cursor: str | None) -> JSONResponse:
    return JSONResponse({"success": True, "data": jsonable_encoder(items), "nextCursor": next_cursor})
