"""Settings of the webhooks service (`SBX_WEBHOOK_*` on top of the common `SBX_*` ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sbx_common.settings import CryptoSettings


class WebhooksSettings(CryptoSettings):
    model_config = SettingsConfigDict(env_prefix="SBX_", extra="ignore")

    # Deliver to loopback, private and link-local addresses too (checked again before every
    # attempt, so a name re-pointed at an inner address after creation is refused then).
    webhook_allow_private: bool = False
    # Every HTTP call of a delivery (connect, write, read) ends within this many seconds.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Retries after a failed attempt wait base * 2^(attempt-1) seconds, at most `max`, until the
    # delivery is `window` seconds old: then it is `failed`.
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=86400.0, gt=0)
    # Deliveries in flight at once, and how often the table is looked at when nothing woke it.
    webhook_concurrency: int = Field(default=8, ge=1, le=64)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # Settled deliveries (and their attempts) older than this many days, or beyond the newest
    # `count` of their webhook, are deleted every `interval` seconds (retention.py).
    webhook_delivery_retention_days: float = Field(default=7.0, gt=0)
    webhook_delivery_retention_count: int = Field(default=1000, ge=1)
    webhook_retention_interval_seconds: float = Field(default=600.0, gt=0)
