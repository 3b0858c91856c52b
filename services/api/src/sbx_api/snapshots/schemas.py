"""Bodies of the snapshots domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import StringConstraints

from sbx_api.schemas import ApiModel, RequestModel, Timestamp

SnapshotName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class CreateSnapshotRequest(RequestModel):
    """`name` defaults to `<sandbox name>-<8 hex>`."""

    name: SnapshotName | None = None


class SnapshotOut(ApiModel):
    """`status`: `creating`, then `ready` (the image is made) or `failed` (`statusReason`)."""

    id: uuid.UUID
    name: str
    sandbox_id: uuid.UUID
    environment_id: uuid.UUID
    environment_version: int
    status: str
    status_reason: str | None
    size_bytes: int
    created_at: Timestamp
