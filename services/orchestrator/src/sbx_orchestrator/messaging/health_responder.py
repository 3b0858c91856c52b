"""`sbx.rpc.orchestrator.health`: whether this orchestrator reaches its Docker engine.

Answers `{"docker": "ok" | "down"}` (the API's `/health` asks this); the ping is cached for a
second, so health checks cost Docker almost nothing. A FastStream core subscriber in the queue
group "orchestrator": one orchestrator answers each request.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.nats.subscriber.usecases import LogicSubscriber
from sbx_common import subjects

from sbx_orchestrator.context import OrchestratorContext

QUEUE_GROUP = "orchestrator"


class HealthResponder:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self._subscriber: LogicSubscriber[Any] | None = None

    async def start(self) -> None:
        self._subscriber = await self.context.broker.answer(
            subjects.RPC_ORCHESTRATOR_HEALTH, self._answer, queue=QUEUE_GROUP
        )

    async def stop(self) -> None:
        if self._subscriber is not None:
            await self._subscriber.stop()

    async def _answer(self) -> bytes:
        docker_ok = await self.context.engine.ping()
        return json.dumps({"docker": "ok" if docker_ok else "down"}).encode()
