"""Publishing what happened: sandbox events on SBX_EVT and dead letters on SBX_DLQ.

Events caused by a command get an id derived from the command and the status, so publishing the
same fact again (a retried or redelivered command) is dropped by JetStream's duplicate window
instead of appearing twice. Published with nats-py: a FastStream publisher would add its own
headers (`content-type`, `correlation_id`) to every stored message and nothing else.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sbx_common import subjects, telemetry, topology
from sbx_common.messages import DeadLetter, SandboxCommand, SandboxEvent
from sbx_common.status import Status

from sbx_orchestrator.metrics import DEAD_LETTERS, EVENTS_PUBLISHED

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("6f3b8f0e-4a55-4f3e-9a53-2f1c0d7e9b21")


def command_event_id(command_id: uuid.UUID, status: Status) -> uuid.UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{command_id}:{status.value}")


class EventPublisher:
    def __init__(self, js: JetStreamContext, nc: NatsClient | None = None) -> None:
        self.js = js
        self.nc = nc

    async def snapshot_note(self, snapshot_id: uuid.UUID) -> None:
        """Tell a waiting API that a snapshot's command was handled (core NATS: a hint that is
        not stored; a waiter that misses it reads the snapshot again after a quiet while)."""
        if self.nc is None:
            return
        try:
            await self.nc.publish(subjects.snapshot_note(snapshot_id), b"")
        except Exception as exc:
            logger.warning(
                "snapshot note not published", extra={"snapshotId": str(snapshot_id), "error": repr(exc)}
            )

    async def sandbox_event(
        self,
        *,
        sandbox_id: uuid.UUID,
        owner_id: uuid.UUID,
        status: Status,
        reason: str | None = None,
        command_id: uuid.UUID | None = None,
        data: dict[str, Any] | None = None,
    ) -> SandboxEvent:
        event = SandboxEvent(
            id=command_event_id(command_id, status) if command_id else uuid.uuid4(),
            sandbox_id=sandbox_id,
            owner_id=owner_id,
            status=status,
            reason=reason,
            command_id=command_id,
            data=data or {},
        )
        await self.js.publish(
            subjects.event(owner_id, sandbox_id, status.value),
            event.to_bytes(),
            stream=topology.STREAM_EVT,
            headers=telemetry.inject_headers({"Nats-Msg-Id": str(event.id)}),
        )
        EVENTS_PUBLISHED.labels(status.value).inc()
        logger.info(
            "sandbox event",
            extra={"sandboxId": str(sandbox_id), "status": status.value, "reason": reason},
        )
        return event

    async def dead_letter(self, command: SandboxCommand, error: str, deliveries: int) -> None:
        letter = DeadLetter(
            id=uuid.uuid5(_EVENT_NAMESPACE, f"{command.id}:dead-letter"),
            command=command,
            error=error,
            deliveries=deliveries,
        )
        await self.js.publish(
            subjects.dead_letter(command.verb.value),
            letter.to_bytes(),
            stream=topology.STREAM_DLQ,
            headers=telemetry.inject_headers({"Nats-Msg-Id": str(letter.id)}),
        )
        DEAD_LETTERS.labels(command.verb.value).inc()
