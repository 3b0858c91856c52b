"""Settings of the log shipper (all `SBX_` variables)."""

from __future__ import annotations

from pydantic import Field
from sbx_common.settings import CommonSettings


class LogShipperSettings(CommonSettings):
    # Where the Docker Engine API listens: `unix:///path` or `tcp://host:port` (DOCKER_HOST).
    docker_host: str = Field(default="unix:///var/run/docker.sock", validation_alias="DOCKER_HOST")
    # The newest lines kept per sandbox in PostgreSQL.
    log_retention_lines: int = Field(default=10_000, ge=1)
    # Lines longer than this (UTF-8 bytes) are split into consecutive lines of at most this size.
    log_max_line_bytes: int = Field(default=16 * 1024, ge=256)
    # A batch is stored and published once it holds this many lines, or after the linger delay.
    log_batch_max_lines: int = Field(default=2_000, ge=1)
    log_batch_linger_seconds: float = Field(default=0.005, ge=0)
    # Lines read from Docker but not yet stored, per sandbox, before reading pauses.
    log_max_pending_lines: int = Field(default=20_000, ge=1)
    # How often every running container of this instance is looked for (missed events, restarts).
    log_rescan_seconds: float = Field(default=30.0, gt=0)
