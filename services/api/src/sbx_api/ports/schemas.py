"""Bodies of the ports domain."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sbx_api.schemas import ApiModel, RequestModel, Timestamp

PREVIEW_MIN_SECONDS = 60
PREVIEW_MAX_SECONDS = 604_800
PREVIEW_DEFAULT_SECONDS = 3600


class PreviewUrlRequest(RequestModel):
    """How long the link works (seconds, 60 to 604800; default 3600). It also stops working when
    the sandbox is destroyed."""

    expires_in_seconds: Annotated[int, Field(ge=PREVIEW_MIN_SECONDS, le=PREVIEW_MAX_SECONDS, strict=True)] = (
        PREVIEW_DEFAULT_SECONDS
    )


class PreviewUrlOut(ApiModel):
    """A link a browser opens with no other credential: its first visit sets an HttpOnly cookie
    scoped to this sandbox's port and redirects to the same address without the token."""

    url: str
    expires_at: Timestamp
