"""Publishing sandbox commands to JetStream (`SBX_CMD`), deduplicated by `Nats-Msg-Id`."""

from __future__ import annotations

import logging

import nats.errors
from nats.js import JetStreamContext
from sbx_common import subjects, telemetry
from sbx_common.jspublish import publish_acked
from sbx_common.messages import SandboxCommand

logger = logging.getLogger(__name__)


class PublishFailed(Exception):
    """The command was not acknowledged by JetStream (it may or may not have been stored)."""


async def publish(js: JetStreamContext, command: SandboxCommand, budget: float) -> None:
    """Publish and await the ack, for up to `budget` seconds (trying again while the command
    stream elects a new leader, `sbx_common.jspublish`). The id doubles as `Nats-Msg-Id`, so a
    re-publish (by the reaper's repair loop, say) is dropped by JetStream inside its duplicate
    window. The headers also carry the request's trace context, which the orchestrator continues."""
    try:
        await publish_acked(
            js,
            subjects.command(command.host_id, command.verb.value),
            command.to_bytes(),
            budget=budget,
            headers=telemetry.inject_headers({"Nats-Msg-Id": str(command.id)}),
        )
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        logger.warning(
            "command not published",
            extra={"commandId": str(command.id), "verb": command.verb.value, "error": repr(exc)},
        )
        raise PublishFailed(str(command.id)) from exc
