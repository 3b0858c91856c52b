"""`sbx.rpc.orchestrator.health`: whether this orchestrator reaches its Docker engine.

Answers `{"docker": "ok" | "down"}` (the API's `/health` asks this); the ping is cached for a
second, so health checks cost Docker almost nothing.
"""

from __future__ import annotations

import json
from contextlib import suppress

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sbx_common import subjects

from sbx_orchestrator.context import OrchestratorContext

QUEUE_GROUP = "orchestrator"


class HealthResponder:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self.context.nc.subscribe(
            subjects.RPC_ORCHESTRATOR_HEALTH, queue=QUEUE_GROUP, cb=self._answer
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            with suppress(Exception):
                await self._subscription.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        docker_ok = await self.context.engine.ping()
        if msg.reply:
            await msg.respond(json.dumps({"docker": "ok" if docker_ok else "down"}).encode())
