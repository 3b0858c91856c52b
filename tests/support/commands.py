"""A wire tap on the commands to the orchestrator (`sbx.cmd.sandbox.*`).

The orchestrator consumes the SBX_CMD work queue, so the tap listens on the wire instead, with a
core NATS subscription: it sees each publish, including duplicates that the stream then drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
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

    async def on_msg(self, msg: Msg) -> None:
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
        """Make sure everything published before now has reached us."""
        await self.nc.flush()
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def tap_commands(nc: NatsClient) -> AsyncIterator[CommandTap]:
    """A tap subscribed on `nc` (in place once this returns) until the block ends."""
    tap = CommandTap(nc)
    sub = await nc.subscribe(subjects.CMD_ALL, cb=tap.on_msg)
    await nc.flush()
    try:
        yield tap
    finally:
        await sub.unsubscribe()
