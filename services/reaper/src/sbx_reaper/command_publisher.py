"""Publishing the reaper's commands with deterministic ids.

Every decision the reaper takes maps to one command id (and one `Nats-Msg-Id`), so two reapers
taking the same decision at once create a single command: JetStream drops the duplicate within
its window, and the orchestrator's handlers are idempotent beyond it. Published with nats-py: a
FastStream publisher would add its own headers (`content-type`, `correlation_id`) and nothing else.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

from nats.js import JetStreamContext
from sbx_common import subjects
from sbx_common.messages import SandboxCommand
from sbx_common.topology import STREAM_CMD

logger = logging.getLogger(__name__)

# Fixed namespace of the reaper's uuid5 command ids; changing it would break deduplication
# between reapers of different versions.
NAMESPACE = uuid.UUID("0f6f2c4e-5b7a-4d0c-9a63-3f1c2f5e7a10")


def ttl_command_id(sandbox_id: uuid.UUID, expires_at: datetime) -> uuid.UUID:
    """The one command (destroy, stop or pause) one `expires_at` of a sandbox produces; a TTL
    moved by a PATCH is a new expiry with a command of its own."""
    return uuid.uuid5(NAMESPACE, f"{sandbox_id}:ttl:{expires_at.timestamp():.6f}")


def fail_command_id(command_id: uuid.UUID) -> uuid.UUID:
    """The fail command that concludes the stuck API command `command_id`."""
    return uuid.uuid5(NAMESPACE, f"{command_id}:fail")


class CommandPublisher:
    """Publishes commands to SBX_CMD, skipping a message id this process sent a moment ago.

    The skip only saves work: the stream deduplicates anyway. After `quiet_seconds` the same
    message id is published again, so a command whose first copy was lost is re-sent.
    """

    def __init__(self, js: JetStreamContext, quiet_seconds: float = 60.0) -> None:
        self._js = js
        self._quiet = quiet_seconds
        self._sent: dict[str, float] = {}

    async def publish(self, command: SandboxCommand, msg_id: str | None = None) -> bool:
        """Publish `command` under `msg_id` (default its id); False if skipped as just sent."""
        msg_id = msg_id or str(command.id)
        now = time.monotonic()
        self._forget_older_than(now - self._quiet)
        if msg_id in self._sent:
            return False
        await self._js.publish(
            subjects.command(command.host_id, command.verb.value),
            command.to_bytes(),
            stream=STREAM_CMD,
            headers={"Nats-Msg-Id": msg_id},
        )
        self._sent[msg_id] = now
        logger.info(
            "command published",
            extra={
                "commandId": str(command.id),
                "msgId": msg_id,
                "verb": command.verb.value,
                "sandboxId": str(command.sandbox_id),
                "reason": command.reason,
            },
        )
        return True

    def _forget_older_than(self, cutoff: float) -> None:
        if self._sent and next(iter(self._sent.values())) < cutoff:
            self._sent = {k: t for k, t in self._sent.items() if t >= cutoff}
