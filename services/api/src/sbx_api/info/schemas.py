"""Body of `GET /info`."""

from __future__ import annotations

from pydantic import Field

from sbx_api.schemas import ApiModel


class InfoLimits(ApiModel):
    max_body_bytes: int = Field(description="Largest JSON request body.")
    default_disk_mib: int = Field(description="`disk` of an environment that gives none.")
    min_disk_mib: int
    max_disk_mib: int
    max_sandboxes_per_user: int
    max_environments_per_user: int


class InfoOut(ApiModel):
    version: str
    runtimes: list[str] = Field(description="Runtimes an environment may ask for (`runc`, `gvisor`).")
    features: list[str] = Field(description="Optional capabilities of this installation.")
    limits: InfoLimits
    disk_limit: str | None = Field(
        description=(
            "How `disk` holds here: `quota`, writes past it fail inside the sandbox (No space left on"
            " device); `watch`, the sandbox is stopped with statusReason `disk quota exceeded` within"
            " seconds; null while the orchestrator has not said."
        )
    )
