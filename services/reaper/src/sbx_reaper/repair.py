"""Repair of sandboxes whose latest API command has not settled.

- Not taken up (the API crashed between its commit and its publish, or the message was lost):
  after `untaken_after` seconds the command is published again with the SAME id and message id,
  so a first copy still queued in the stream makes this one a dropped duplicate.
- Taken up but stuck in a transitional status (or still not taken up much later): once per
  `stuck_timeout`, up to `max_republish` times, the same command (same id) is published again
  under a per-attempt message id (`<id>:repair-<n>`), which passes the stream's duplicate window
  while two reapers computing the same attempt still create one message.
- After that, a `fail` command asks the orchestrator to end the sandbox `failed` with the reason
  "stuck: <status> for <n>s". It is sent only while an orchestrator answers its health check, so a
  sandbox is never failed merely because the orchestrator was down; the orchestrator applies it
  only if the sandbox is still unsettled when it arrives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from sbx_common import natsconn
from sbx_common.codes import CommandReason
from sbx_common.messages import SandboxCommand
from sbx_common.status import Verb

from sbx_reaper import metrics
from sbx_reaper.command_publisher import CommandPublisher, fail_command_id
from sbx_reaper.repository import SandboxReader, Unsettled

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Republish:
    msg_id: str


@dataclass(frozen=True)
class Fail:
    reason: str


def plan(row: Unsettled, stuck_timeout: float, max_republish: int) -> Republish | Fail | None:
    """What to do about one unsettled sandbox; deterministic, so every reaper decides alike."""
    attempt = int(row.age // stuck_timeout)
    if attempt == 0:
        # Taken up and busy for less than the timeout is normal work.
        return None if row.taken_up else Republish(str(row.command_id))
    if attempt > max_republish:
        return Fail(f"stuck: {row.status} for {int(row.age)}s")
    return Republish(f"{row.command_id}:repair-{attempt}")


class Repairer:
    def __init__(
        self,
        nc: NatsClient,
        reader: SandboxReader,
        publisher: CommandPublisher,
        *,
        untaken_after: float,
        stuck_timeout: float,
        max_republish: int,
    ) -> None:
        self._nc = nc
        self._reader = reader
        self._publisher = publisher
        self._untaken_after = untaken_after
        self._stuck_timeout = stuck_timeout
        self._max_republish = max_republish
        self._orchestrator_was_up = True

    async def sweep(self) -> None:
        rows = await self._reader.unsettled(self._untaken_after, self._stuck_timeout)
        orchestrator_up: bool | None = None
        for row in rows:
            action = plan(row, self._stuck_timeout, self._max_republish)
            if action is None:
                continue
            try:
                verb = Verb(row.verb)
            except ValueError:
                logger.warning(
                    "unknown command verb", extra={"sandboxId": str(row.sandbox_id), "verb": row.verb}
                )
                continue
            if isinstance(action, Republish):
                command = SandboxCommand(
                    id=row.command_id,
                    verb=verb,
                    sandbox_id=row.sandbox_id,
                    owner_id=row.owner_id,
                    reason=CommandReason.REPAIR,
                    host_id=row.host_id,
                )
                if await self._publisher.publish(command, action.msg_id):
                    metrics.COMMANDS_REPAIRED.labels("republish").inc()
                continue
            if orchestrator_up is None:
                orchestrator_up = await self._orchestrator_up()
            if not orchestrator_up:
                continue
            command = SandboxCommand(
                id=fail_command_id(row.command_id),
                verb=Verb.FAIL,
                sandbox_id=row.sandbox_id,
                owner_id=row.owner_id,
                reason=action.reason,
                host_id=row.host_id,
            )
            if await self._publisher.publish(command):
                metrics.COMMANDS_REPAIRED.labels("fail").inc()

    async def _orchestrator_up(self) -> bool:
        # An orchestrator without Docker cannot act on a sandbox either: not failing it then.
        up = await natsconn.orchestrator_reaches_docker(self._nc, wait_seconds=2)
        if up != self._orchestrator_was_up:
            log = logger.info if up else logger.warning
            log(
                "orchestrator and Docker answering again"
                if up
                else "orchestrator or Docker down: stuck sandboxes wait"
            )
            self._orchestrator_was_up = up
        return up
