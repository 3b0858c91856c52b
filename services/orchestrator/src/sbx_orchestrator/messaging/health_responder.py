"""`sbx.rpc.orchestrator.health`: whether this orchestrator reaches its Docker engine.

Answers `{"docker": "ok" | "down", "runtimes": [...], "diskLimit": "quota" | "watch"}` (the
API's `/health` and `/info` ask this): whether the engine answers, the container runtimes it
offers (platform names, e.g. `runsc` as `gvisor`) and how a sandbox's `disk` is enforced there.
The ping is cached for a second and the engine's info for `engine_info_ttl`, so health checks
cost Docker almost nothing. A FastStream core subscriber in the queue
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
        self._subscribers: list[LogicSubscriber[Any]] = []

    async def start(self) -> None:
        # Its own host's subject (the reaper and the API asking about one host), and the one
        # any host answers (the API's `/health` and `GET /info` on an installation of one host).
        host_subject = subjects.rpc(self.context.settings.host_id, subjects.RPC_HEALTH)
        for subject in (host_subject, subjects.RPC_ORCHESTRATOR_HEALTH):
            self._subscribers.append(
                await self.context.broker.answer(subject, self._answer, queue=QUEUE_GROUP)
            )

    async def stop(self) -> None:
        for subscriber in self._subscribers:
            await subscriber.stop()

    async def _answer(self) -> bytes:
        engine = self.context.engine
        docker_ok = await engine.ping()
        reply: dict[str, Any] = {"docker": "ok" if docker_ok else "down"}
        info = await engine.info() if docker_ok else None
        if info is not None:
            reply["runtimes"] = info.runtimes
            reply["diskLimit"] = "quota" if (await engine.features()).storage_quota else "watch"
        return json.dumps(reply).encode()
