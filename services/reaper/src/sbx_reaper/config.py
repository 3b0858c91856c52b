"""Settings of the reaper (`SBX_REAPER_*` on top of the common `SBX_*` ones)."""

from __future__ import annotations

from pydantic import Field
from sbx_common.settings import CommonSettings


class ReaperSettings(CommonSettings):
    # How often the database sweep runs (TTLs missed by the timers, repairs, orphans).
    reaper_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # A container younger than this is never reaped, so a create in flight is left alone.
    reaper_orphan_grace_seconds: float = Field(default=30.0, ge=0)
    # An API command not taken up by the orchestrator after this long is published again.
    reaper_untaken_after_seconds: float = Field(default=5.0, gt=0)
    # A sandbox in a transitional status this long gets its command published again, once per
    # period, up to `reaper_stuck_max_republish` times; after that it is made `failed`.
    reaper_stuck_timeout_seconds: float = Field(default=120.0, gt=0)
    reaper_stuck_max_republish: int = Field(default=2, ge=0)
    # A host whose heartbeat is older than this is lost: its sandboxes are reported `failed`,
    # reason `host lost` (docs/scale-out.md).
    host_grace: float = Field(default=30.0, ge=5.0)
    # Whether this reaper sweeps the Docker engine of its host (`SBX_HOST_ID`, `DOCKER_HOST`):
    # orphan containers and snapshot images. Run one such reaper on every host; reapers that run
    # elsewhere set it off and only publish commands and watch the hosts.
    reaper_docker: bool = True
