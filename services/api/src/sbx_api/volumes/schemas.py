"""Bodies of the volumes domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from sbx_api.schemas import ApiModel, RequestModel, Timestamp

SIZE_MIB_MAX = 102_400
SIZE_MIB_DEFAULT = 1024

VolumeName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class CreateVolumeRequest(RequestModel):
    """`name` is unique among the caller's volumes; `sizeMiB` is a hard limit inside the sandbox."""

    name: VolumeName
    size_mib: Annotated[int, Field(alias="sizeMiB", ge=1, le=SIZE_MIB_MAX, strict=True)] = SIZE_MIB_DEFAULT


class VolumeOut(ApiModel):
    """`usedBytes`: as last measured by the orchestrator (when a sandbox using it is made,
    stopped or destroyed); `attachedTo`: the sandboxes, not destroyed, that mount it."""

    id: uuid.UUID
    name: str
    size_mib: int = Field(alias="sizeMiB")
    used_bytes: int
    created_at: Timestamp
    attached_to: list[uuid.UUID]
