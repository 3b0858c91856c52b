"""Connecting to NATS with the settings every service wants."""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError

from sbx_common import subjects

logger = logging.getLogger(__name__)


async def connect(url: str, name: str) -> Client:
    nc = Client()

    async def on_error(exc: Exception) -> None:
        logger.warning("nats error", extra={"error": repr(exc)})

    async def on_disconnect() -> None:
        # nats-py calls this on an orderly close too; only a lost connection is worth a warning.
        if nc.is_closed:
            logger.debug("nats connection closed")
        else:
            logger.warning("nats disconnected")

    async def on_reconnect() -> None:
        logger.info("nats reconnected")

    await nc.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,  # keep trying forever: NATS restarts must not kill a service
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # annotated int, used as a float sleep
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return nc


async def orchestrator_health(nc: Client, wait_seconds: float) -> dict[str, Any] | None:
    """An orchestrator's health answer (`docker`, and the engine's `runtimes` and `diskLimit`
    while it reaches Docker), or None when none answers."""
    if not nc.is_connected:
        return None
    try:
        reply = await nc.request(subjects.RPC_ORCHESTRATOR_HEALTH, b"{}", timeout=wait_seconds)
        answer = json.loads(reply.data)
    except (NatsError, TimeoutError, ValueError, AttributeError):
        return None
    return answer if isinstance(answer, dict) else None


async def orchestrator_reaches_docker(nc: Client, wait_seconds: float) -> bool:
    """Whether an orchestrator answers its health request and reports the Docker engine up."""
    answer = await orchestrator_health(nc, wait_seconds)
    return answer is not None and answer.get("docker") == "ok"
