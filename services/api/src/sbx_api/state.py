"""Resources opened by the lifespan and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sbx_common.crypto import SecretBox

from sbx_api.api_instances import ApiProcess
from sbx_api.config import ApiSettings
from sbx_api.gauges import BusinessGauges
from sbx_api.hosts.registry import HostCache
from sbx_api.info.offer import EngineOfferCache
from sbx_api.ports.upstream import UpstreamPool
from sbx_api.ratelimit import RateLimiter
from sbx_api.usage import UsageCounter


@dataclass
class AppState:
    settings: ApiSettings
    pool: asyncpg.Pool
    nc: NatsClient
    js: JetStreamContext
    secret_box: SecretBox
    limiter: RateLimiter  # shared by every API process (PostgreSQL) unless configured otherwise
    process: ApiProcess  # this worker process's row in `api_processes`
    usage: UsageCounter  # per-user caps, shared by every API process (PostgreSQL)
    # Per process on purpose: what the orchestrator last said of the engine (5 s), and the
    # business gauges each process refreshes from PostgreSQL for its own /metrics.
    engine_offer: EngineOfferCache = field(default_factory=EngineOfferCache)
    gauges: BusinessGauges = field(default_factory=BusinessGauges)
    # The hosts' heartbeats, read for placement (at most a second old).
    hosts: HostCache = field(default_factory=HostCache)
    # Connections to sandboxes' ports (the port proxy); made and closed by the lifespan.
    proxy_pool: UpstreamPool = field(default_factory=lambda: UpstreamPool(5.0, 300.0))
