"""Bodies of the files routes (the "Files" part of the contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from sbx_api.schemas import ApiModel, RequestModel

FilePath = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^/")]


class FileEntryOut(ApiModel):
    name: str
    path: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int
    mode: str = Field(description='Permission bits in octal, e.g. "0644".')
    modified_at: datetime | None


class MkdirIn(RequestModel):
    path: FilePath
    parents: bool = Field(default=False, description="Create missing parent directories too.")


class MoveIn(RequestModel):
    from_: FilePath = Field(alias="from")
    to: FilePath
    overwrite: bool = Field(
        default=False, description="Replace what is at `to` (an empty directory or a file)."
    )


class UploadOut(ApiModel):
    path: str
    size: int


class DeletedOut(ApiModel):
    path: str
    deleted: bool = True


class ArchiveOut(ApiModel):
    path: str
    entries: int = Field(description="How many entries of the archive were extracted.")
