"""`?wait=true`: follow a sandbox's events until it settles, instead of polling the database.

The subscription to `sbx.evt.<owner>.<sandbox>.*` (core NATS) is made before the command is
published. NATS handles one connection's protocol messages in order, so the server knows the
subscription before it routes the command, and no event caused by the command can be missed.
Each settled event (`running`, `stopped`, ...) triggers one re-read of `sandbox_view`, which
stays the single source of the status; transitional ones (`resuming`, ...) are not re-read.

Two safety nets, neither a polling loop: when an event says "settled" but the view does not show
it yet (the orchestrator's write not yet visible), the view is re-read a few times with a short
back-off; and if no event arrives for `QUIET_REREAD_SECONDS` (core NATS is at-most-once, e.g.
across a reconnect), the view is read once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sbx_common import subjects
from sbx_common.status import SETTLED

from sbx_api.sandboxes.repository import SandboxRow

QUIET_REREAD_SECONDS = 2.0
_SETTLED_VALUES = frozenset(s.value for s in SETTLED)
_CATCH_UP_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)

Reader = Callable[[], Awaitable[SandboxRow | None]]


def is_settled(row: SandboxRow | None) -> bool:
    return row is not None and row.status in _SETTLED_VALUES


class SettleWatcher:
    """`subscribe()` before acting; then `until_settled()` returns the row once it settles."""

    def __init__(self, subject: str) -> None:
        self._subject = subject
        self._sub: Subscription | None = None
        self._signal = asyncio.Event()
        self._settled_event_seen = False

    @classmethod
    async def subscribe(cls, nc: NatsClient, owner_id: uuid.UUID, sandbox_id: uuid.UUID) -> SettleWatcher:
        watcher = cls(subjects.events_of_sandbox(owner_id, sandbox_id))
        watcher._sub = await nc.subscribe(watcher._subject, cb=watcher._on_event)
        return watcher

    async def close(self) -> None:
        if self._sub is not None:
            # On a closed connection there is nothing left to unsubscribe from.
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_event(self, msg: Msg) -> None:
        status = msg.subject.rsplit(".", 1)[-1]
        # A transitional status cannot settle the sandbox: its settled event follows (or the
        # quiet re-read finds it), so only settled events cost a read of the view.
        if status in _SETTLED_VALUES:
            self._settled_event_seen = True
            self._signal.set()

    async def until_settled(self, read: Reader, seconds: float) -> SandboxRow | None:
        """Read the row on every settled event (or after a quiet while) until it shows a settled
        status or `seconds` pass; return the last row read.

        Nothing is read before the first event: the subscription was made before the command
        went out and the signal has not been cleared since, so an event that came meanwhile is
        flagged already. With no time left the row is read once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            remaining = deadline - loop.time()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._signal.wait(), min(remaining, QUIET_REREAD_SECONDS))
            self._signal.clear()  # before the read: an event during the read is not lost
            row = await read()
            if not is_settled(row) and self._settled_event_seen:
                row = await self._catch_up(read, deadline)
            if is_settled(row) or loop.time() >= deadline:
                return row

    async def _catch_up(self, read: Reader, deadline: float) -> SandboxRow | None:
        """An event said "settled" before the view shows it: re-read briefly with back-off."""
        self._settled_event_seen = False
        loop = asyncio.get_running_loop()
        row = None
        for delay in _CATCH_UP_DELAYS:
            if loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            row = await read()
            if is_settled(row):
                return row
        return row if row is not None else await read()
