"""TTL expiry: in-process timers that publish the sandbox's `onExpire` command (destroy, stop or
pause; reason "ttl") when its `expires_at` passes.

Timers are kept only for sandboxes expiring within `horizon` seconds; the periodic sweep
schedules the next ones well before they are due (and catches up on those that expired while
no reaper ran), and events schedule sandboxes created between two sweeps. When a timer fires the
row is read again, so a sandbox that ended meanwhile is left alone, and one whose TTL a PATCH
moved is armed again for its new time (a shortened TTL is at least 10 s away, more than a sweep
interval, so the next sweep arms it in time).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sbx_common.codes import CommandReason
from sbx_common.messages import SandboxCommand, SandboxEvent
from sbx_common.status import TERMINAL, Verb
from sbx_common.tasks import cancel_and_wait

from sbx_reaper import metrics
from sbx_reaper.command_publisher import CommandPublisher, ttl_command_id
from sbx_reaper.repository import NO_TTL, Expiry, SandboxReader

logger = logging.getLogger(__name__)

# The command each `onExpire` sends.
ON_EXPIRE = {"destroy": Verb.DESTROY, "stop": Verb.STOP, "pause": Verb.PAUSE}


class TtlTimers:
    def __init__(self, reader: SandboxReader, publisher: CommandPublisher, horizon: float) -> None:
        self._reader = reader
        self._publisher = publisher
        self.horizon = horizon
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, expiry: Expiry) -> None:
        """Arm a timer for `expiry` unless one is armed or it is beyond the horizon."""
        if expiry.sandbox_id in self._timers or expiry.remaining > self.horizon:
            return
        loop = asyncio.get_running_loop()
        self._timers[expiry.sandbox_id] = loop.call_later(
            max(0.0, expiry.remaining), self._fire, expiry.sandbox_id
        )
        metrics.TTL_TIMERS.set(len(self._timers))

    def cancel(self, sandbox_id: uuid.UUID) -> None:
        handle = self._timers.pop(sandbox_id, None)
        if handle is not None:
            handle.cancel()
            metrics.TTL_TIMERS.set(len(self._timers))

    async def on_event(self, event: SandboxEvent) -> None:
        """Events keep the timers current between sweeps."""
        if event.status in TERMINAL:
            self.cancel(event.sandbox_id)
            return
        if event.sandbox_id in self._timers:
            return
        expiry = await self._reader.expiry_of(event.sandbox_id)
        if expiry is not None and expiry.status not in NO_TTL:
            self.schedule(expiry)

    async def sweep(self) -> None:
        """Arm timers for everything due within the horizon; overdue sandboxes fire at once."""
        for expiry in await self._reader.expiring_within(self.horizon):
            self.schedule(expiry)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        await cancel_and_wait(list(self._tasks))

    def _fire(self, sandbox_id: uuid.UUID) -> None:
        self._timers.pop(sandbox_id, None)
        metrics.TTL_TIMERS.set(len(self._timers))
        task = asyncio.create_task(self._expire(sandbox_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, sandbox_id: uuid.UUID) -> None:
        try:
            expiry = await self._reader.expiry_of(sandbox_id)
            if expiry is None or expiry.status in NO_TTL:
                return
            if expiry.remaining > 0:  # fired early (clock drift): wait for the rest
                self.schedule(expiry)
                return
            command = SandboxCommand(
                id=ttl_command_id(sandbox_id, expiry.expires_at),
                verb=ON_EXPIRE.get(expiry.on_expire, Verb.DESTROY),
                sandbox_id=sandbox_id,
                owner_id=expiry.owner_id,
                reason=CommandReason.TTL,
                host_id=expiry.host_id,
            )
            if await self._publisher.publish(command):
                metrics.SANDBOXES_EXPIRED.inc()
        except Exception:
            # The next sweep finds the sandbox again (it is still past its expiry).
            logger.exception("ttl expiry failed", extra={"sandboxId": str(sandbox_id)})
