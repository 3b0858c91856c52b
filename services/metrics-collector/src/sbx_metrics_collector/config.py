"""Settings of the metrics collector (`SBX_METRICS_*` on top of the common `SBX_*` ones)."""

from __future__ import annotations

from pydantic import Field
from sbx_common.settings import CommonSettings


class CollectorSettings(CommonSettings):
    # Seconds between two samples of every running sandbox.
    metrics_interval_seconds: float = Field(default=2.0, gt=0)
    # Where the host's cgroup hierarchy and /proc are mounted (in a container: the host's).
    metrics_cgroup_root: str = "/sys/fs/cgroup"
    metrics_proc_root: str = "/proc"
