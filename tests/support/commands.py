"""A wire tap on the commands to the orchestrators (`sbx.cmd.*.sandbox.*`, every host).

The orchestrator consumes the SBX_CMD work queue, so the tap listens on the wire instead, with a
core NATS subscription: it sees each publish, including duplicates that the stream then drops.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sbx_common import subjects
from sbx_common.messages import SandboxCommand

from tests.support.waiting import ConditionTimeout, wait_for


@dataclass
class Seen:
    command: SandboxCommand
    wire: dict[str, Any]  # the command's JSON as it was published
    subject: str
    msg_id: str | None
    at: float  # time.time() when it went over the wire


@dataclass
class CommandTap:
    """Every command published since the tap was set up, in the order seen."""

    nc: NatsClient
    seen: list[Seen] = field(default_factory=list)
    subscription: Subscription | None = None

    async def on_msg(self, msg: Msg) -> None:
        # No await in here: a message taken from the subscription's queue is recorded in the
        # same step, which `settle` relies on.
        self.seen.append(
            Seen(
                SandboxCommand.model_validate_json(msg.data),
                json.loads(msg.data),
                msg.subject,
                (msg.headers or {}).get("Nats-Msg-Id"),
                time.time(),
            )
        )

    def matching(self, predicate: Callable[[SandboxCommand], bool]) -> list[Seen]:
        return [s for s in self.seen if predicate(s.command)]

    async def wait(self, predicate: Callable[[SandboxCommand], bool], timeout: float = 15.0) -> Seen:
        """The first command matching `predicate`, once one has been seen."""

        async def first() -> Seen | None:
            found = self.matching(predicate)
            return found[0] if found else None

        try:
            return await wait_for(first, timeout=timeout, interval=0.05, what="a matching command")
        except ConditionTimeout as timed_out:
            raise ConditionTimeout(f"{timed_out}; seen: {self.seen!r}") from None

    def for_sandbox(self, sandbox_id: str) -> list[dict[str, Any]]:
        """One sandbox's commands as published: their JSON, with `subject` and `msgId`."""
        return [
            {"subject": s.subject, "msgId": s.msg_id, **s.wire}
            for s in self.seen
            if s.wire["sandboxId"] == sandbox_id
        ]

    async def settle(self) -> None:
        """Make sure every command published before now is recorded.

        The API answers a call only once JetStream has acknowledged its command, and the server
        hands a message to every subscriber, this tap included, as it routes the publish, before
        the stream stores and acknowledges it. A server round trip on the tap's connection (the
        PONG comes after everything sent to it before) then has the message in the
        subscription's queue, and the queue empties as `on_msg` records what it takes."""
        await self.nc.flush()
        subscription = self.subscription
        assert subscription is not None, "the tap is not subscribed"

        async def recorded() -> bool:
            return subscription.pending_msgs == 0

        await wait_for(recorded, timeout=10, interval=0.01, what="the tapped commands recorded")


@contextlib.asynccontextmanager
async def tap_commands(nc: NatsClient) -> AsyncIterator[CommandTap]:
    """A tap subscribed on `nc` (in place once this returns) until the block ends."""
    tap = CommandTap(nc)
    tap.subscription = await nc.subscribe(subjects.CMD_ALL, cb=tap.on_msg)
    await nc.flush()
    try:
        yield tap
    finally:
        await tap.subscription.unsubscribe()
