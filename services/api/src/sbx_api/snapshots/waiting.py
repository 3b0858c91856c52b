"""`?wait=true` on `POST /sandboxes/:id/snapshots`: hear the orchestrator's note for the snapshot
until it is `ready` or `failed`, instead of polling the database.

As for sandboxes (`sandboxes/waiting.py`), the subscription to `sbx.note.snapshot.<id>` (core
NATS) is made before the command is published, so no note caused by it can be missed, and each
note triggers one read of the snapshot's row, which stays the single source of its status. The
orchestrator writes the row before it sends the note, so the read sees it. If no note arrives
for `QUIET_REREAD_SECONDS` (core NATS is at-most-once, e.g. across a reconnect), the row is read
once more.
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

from sbx_api.snapshots.repository import SnapshotRow

QUIET_REREAD_SECONDS = 2.0
SETTLED = frozenset({"ready", "failed"})

Reader = Callable[[], Awaitable[SnapshotRow | None]]


class SnapshotWatcher:
    """`subscribe()` before publishing; then `until_settled()` returns the row once it settles."""

    def __init__(self) -> None:
        self._sub: Subscription | None = None
        self._signal = asyncio.Event()

    @classmethod
    async def subscribe(cls, nc: NatsClient, snapshot_id: uuid.UUID) -> SnapshotWatcher:
        watcher = cls()
        watcher._sub = await nc.subscribe(subjects.snapshot_note(snapshot_id), cb=watcher._on_note)
        return watcher

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_note(self, msg: Msg) -> None:
        self._signal.set()

    async def until_settled(self, read: Reader, seconds: float) -> SnapshotRow | None:
        """Read on every note until the snapshot is settled (or gone) or `seconds` pass; the
        last row read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._signal.clear()  # before each read: a note during the read is not lost
        row = await read()
        while row is not None and row.status not in SETTLED:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), min(remaining, QUIET_REREAD_SECONDS))
            self._signal.clear()
            row = await read()
        return row
