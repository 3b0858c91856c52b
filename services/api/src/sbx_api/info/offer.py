"""What the Docker engine behind the orchestrator offers, as last announced by the orchestrator.

The API never touches Docker: the orchestrator's health answer carries the engine's runtimes and
how `disk` is enforced. The answer is kept for `TTL` seconds; while no orchestrator answers, the
last one known stands (before any: only `runc`, which every engine has).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from sbx_common import natsconn, runtimes

TTL = 5.0
ASK_TIMEOUT = 1.0
RETRY_AFTER = 1.0  # while no orchestrator answers: ask again after this long, not per request


@dataclass(frozen=True)
class EngineOffer:
    runtimes: list[str]
    disk_limit: str | None  # "quota" (the engine enforces it) | "watch" | None (unknown)


@dataclass
class EngineOfferCache:
    offer: EngineOffer = field(default_factory=lambda: EngineOffer([runtimes.RUNC], None))
    fetched_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, nc: NatsClient) -> EngineOffer:
        async with self._lock:
            if time.monotonic() - self.fetched_at > TTL:
                answer = await natsconn.orchestrator_health(nc, ASK_TIMEOUT)
                if answer is not None and isinstance(answer.get("runtimes"), list):
                    names = [str(name) for name in answer["runtimes"]]
                    disk_limit = answer.get("diskLimit")
                    self.offer = EngineOffer(
                        runtimes=[name for name in runtimes.ENGINE_NAMES if name in names],
                        disk_limit=str(disk_limit) if disk_limit else None,
                    )
                    self.fetched_at = time.monotonic()
                else:
                    self.fetched_at = time.monotonic() - TTL + RETRY_AFTER
            return self.offer
