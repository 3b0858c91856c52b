"""Cursor pagination of `GET` collections: `limit` (default 50, max 500) and an opaque `cursor`.

A cursor is the sort key of the last item of a page, encoded as base64url JSON, so pages stay
stable while rows are added (keyset pagination, no OFFSET). Each list decides what its key is
(e.g. `[created_at, id]`); `encode_cursor`/`decode_cursor` only carry it.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from sbx_common.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_BAD_CURSOR = "The cursor is not valid."


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None

    def after(self, length: int) -> list[Any] | None:
        """The sort key the page starts after (None for the first page)."""
        return decode_cursor(self.cursor, length) if self.cursor else None


def encode_cursor(key: list[Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    """The key a cursor carries; a cursor that was not made by `encode_cursor` is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValidationFailed.for_field("cursor", _BAD_CURSOR) from None
    if not isinstance(key, list) or len(key) != length:
        raise ValidationFailed.for_field("cursor", _BAD_CURSOR)
    return key


# async although it awaits nothing: FastAPI runs a plain `def` dependency in a worker thread.
async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1-500).")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`nextCursor` of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor or None)


Page = Annotated[PageParams, Depends(page_params)]


T = TypeVar("T")


def time_id_after(params: PageParams) -> tuple[datetime, uuid.UUID] | None:
    """Decode a `(created_at, id)` keyset cursor, as made by `time_id_key`."""
    after = params.after(2)
    if after is None:
        return None
    try:
        moment = datetime.fromisoformat(str(after[0]))
        ident = uuid.UUID(str(after[1]))
        # In UTC here: a forged moment at the calendar's edge would overflow in the driver.
        utc_moment = moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        raise ValidationFailed.for_field("cursor", _BAD_CURSOR) from None
    if utc_moment is None:
        raise ValidationFailed.for_field("cursor", _BAD_CURSOR)
    return utc_moment, ident


def time_id_key(created_at: datetime, ident: uuid.UUID) -> list[Any]:
    return [created_at.isoformat(), str(ident)]


INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1


def int_after(params: PageParams, maximum: int) -> int | None:
    """Decode a cursor that carries one integer (a version number, a serial id) in 0..maximum.

    The bound is the column's: a forged cursor past it would otherwise fail in PostgreSQL."""
    after = params.after(1)
    if after is None:
        return None
    if not isinstance(after[0], int) or isinstance(after[0], bool) or not 0 <= after[0] <= maximum:
        raise ValidationFailed.for_field("cursor", _BAD_CURSOR)
    return after[0]


def split_page(rows: Sequence[T], limit: int, key_of: Callable[[T], list[Any]]) -> tuple[list[T], str | None]:
    """Given up to `limit + 1` rows, return the page and the cursor of the next one (or None)."""
    if len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    return page, encode_cursor(key_of(page[-1]))
