"""Docker's event stream: containers of this instance that end by themselves.

A `die` event of one of this instance's containers is handled under the sandbox's lock by
`Lifecycle.observe`, which tells an exit the orchestrator caused (the recorded status is no
longer `running`) from one it did not (`stopped` for exit 0, else `failed`). Each time the
stream is (re)connected, every sandbox recorded `running` or `paused` is checked against Docker,
which covers events missed while the stream was down or the orchestrator was not running. When
the stream had broken (the engine went away, e.g. a restart), containers the engine stopped on its
way down are started again (`Lifecycle.recover`) before anything is recorded as ended.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from contextlib import suppress
from typing import Any

from sbx_common import labels
from sbx_common.status import Status
from sbx_common.tasks import cancel_and_wait

from sbx_orchestrator.context import OrchestratorContext

logger = logging.getLogger(__name__)

RECONNECT_DELAY = 1.0
# A container stopped by someone else than the orchestrator (a `kill` event came first) may be
# going down with the engine (dockerd stops its containers before it closes its API): its exit
# is recorded only if the engine is still there this much later (Docker's shutdown timeout is
# 15 s); if the event stream broke meanwhile, the reconcile after it comes back decides.
KILLED_EXIT_GRACE = 20.0
# An engine followed this long after a lost stream is taken as back for good.
STABLE_AFTER = 30.0
# With no event for this long, the engine is pinged: a stream to an engine that went away does
# not always end by itself.
IDLE_PING = 5.0
STARTUP_WAIT = 30.0
_END = object()


class ContainerWatcher:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._stream: Any = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        # When a followed stream broke (epoch seconds), until the next reconcile.
        self._lost_at: float | None = None
        self._following = False
        self._generation = 0  # counts the connections to the event stream

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="docker-events")
        # Commands start once the first reconciliation is done (or Docker is known to be down).
        with suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=STARTUP_WAIT)

    async def stop(self) -> None:
        self._stopping = True
        self._close_stream()
        await cancel_and_wait([self._task])
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=self.context.settings.shutdown_timeout)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("docker event stream failed", extra={"error": repr(exc)})
            finally:
                self._close_stream()
                if self._following and not self._stopping and self._lost_at is None:
                    self._lost_at = time.time()  # the first break counts until the engine is back
                self._following = False
            if not self._stopping:
                self.connected.set()  # Docker down: do not hold the start-up back any longer
                await asyncio.sleep(RECONNECT_DELAY)

    async def _follow(self) -> None:
        engine = self.context.engine
        filters = {
            "type": ["container"],
            "event": ["die", "kill"],
            "label": labels.instance_filter(self.context.settings.instance),
        }
        self._stream = await engine.call("events", engine.api.events, decode=True, filters=filters)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pump = threading.Thread(
            target=self._pump, args=(self._stream, queue, loop), name="docker-events", daemon=True
        )
        pump.start()
        self._following = True
        self._generation += 1
        connected_at = time.monotonic()
        await self.reconcile(self._lost_at)
        try:
            # The firewall rebuilt from Docker and the database (at start-up, and after an
            # engine restart, which recreates DOCKER-USER without the platform's jump).
            await self.context.guard.resync()
        except Exception:
            logger.exception("sandbox network rules could not be rebuilt")
        self.connected.set()
        logger.info("following docker events")
        killed: dict[str, float] = {}
        while True:
            if self._lost_at is not None and time.monotonic() - connected_at > STABLE_AFTER:
                # Followed long enough: the engine is really back (a dying one may still accept
                # a connection), so the time it was lost no longer matters.
                self._lost_at = None
            try:
                event = await asyncio.wait_for(queue.get(), timeout=IDLE_PING)
            except TimeoutError:
                if not await engine.ping():
                    logger.warning("docker engine gone while following its events")
                    return
                continue
            if event is _END:
                if not self._stopping:
                    logger.warning("docker event stream ended")
                return
            sandbox_id = (event.get("Actor", {}).get("Attributes") or {}).get(labels.SANDBOX_ID)
            if not sandbox_id:
                continue
            if event.get("Action") == "kill":
                killed[sandbox_id] = time.monotonic()
                continue
            killed_at = killed.pop(sandbox_id, None)
            if killed_at is not None and time.monotonic() - killed_at < KILLED_EXIT_GRACE:
                self._spawn(uuid.UUID(sandbox_id), delay=KILLED_EXIT_GRACE)
            else:
                self._spawn(uuid.UUID(sandbox_id))

    @staticmethod
    def _pump(stream: Any, queue: asyncio.Queue[Any], loop: asyncio.AbstractEventLoop) -> None:
        """Thread: hand Docker's (blocking) event stream over to the event loop."""
        try:
            for event in stream:
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except Exception as exc:
            logger.debug("docker event stream closed", extra={"error": repr(exc)})
        finally:
            with suppress(RuntimeError):  # the loop is closed: the process is ending
                loop.call_soon_threadsafe(queue.put_nowait, _END)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:
                logger.debug("closing the docker event stream failed", extra={"error": repr(exc)})

    def _spawn(self, sandbox_id: uuid.UUID, delay: float = 0.0) -> None:
        task = asyncio.create_task(
            self._observe_later(sandbox_id, delay) if delay else self._observe(sandbox_id)
        )
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _observe_later(self, sandbox_id: uuid.UUID, delay: float) -> None:
        """Observe after `delay`, unless the stream broke meanwhile (then the reconcile after it
        came back, or will, takes the sandbox up)."""
        generation = self._generation
        await asyncio.sleep(delay)
        if self._generation == generation and self._following and self._lost_at is None:
            await self._observe(sandbox_id)

    async def _observe(self, sandbox_id: uuid.UUID) -> None:
        try:
            async with self.context.locks.hold(sandbox_id):
                await self.context.lifecycle.observe(sandbox_id)
        except Exception:
            logger.exception("could not record a container exit", extra={"sandboxId": str(sandbox_id)})

    async def reconcile(self, engine_lost_at: float | None = None) -> None:
        """Check every sandbox recorded `running` or `paused` whose container does not run (any
        more): after an engine restart a paused container is not paused any more either."""
        recorded = await self.context.repository.sandboxes_in_status([Status.RUNNING, Status.PAUSED])
        if not recorded:
            return
        containers = await self.context.engine.instance_containers(self.context.settings.instance)
        running = {
            c["Labels"].get(labels.SANDBOX_ID)
            for c in containers
            if c.get("State") in ("running", "paused") and c.get("Labels")
        }
        stale = [sandbox_id for sandbox_id in recorded if str(sandbox_id) not in running]
        if stale:
            logger.info("reconciling sandboxes whose container no longer runs", extra={"count": len(stale)})
        await asyncio.gather(*(self._settle(sandbox_id, engine_lost_at) for sandbox_id in stale))

    async def _settle(self, sandbox_id: uuid.UUID, engine_lost_at: float | None) -> None:
        """Restore a sandbox the engine stopped when it went away, else record how it ended."""
        try:
            async with self.context.locks.hold(sandbox_id):
                lifecycle = self.context.lifecycle
                if engine_lost_at is None or not await lifecycle.recover(sandbox_id, engine_lost_at):
                    await lifecycle.observe(sandbox_id)
        except Exception:
            logger.exception("could not reconcile a sandbox", extra={"sandboxId": str(sandbox_id)})
