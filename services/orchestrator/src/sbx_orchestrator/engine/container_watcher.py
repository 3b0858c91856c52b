"""Docker's event stream: containers of this instance that end by themselves.

A `die` event of one of this instance's containers is handled under the sandbox's lock by
`Lifecycle.observe`, which tells an exit the orchestrator caused (the recorded status is no
longer `running`) from one it did not (`stopped` for exit 0, else `failed`). Each time the
stream is (re)connected, every sandbox recorded `running` is checked against Docker, which covers
events missed while the stream was down or the orchestrator was not running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from contextlib import suppress
from typing import Any

from sbx_common import labels
from sbx_common.status import Status
from sbx_common.tasks import cancel_and_wait

from sbx_orchestrator.context import OrchestratorContext

logger = logging.getLogger(__name__)

RECONNECT_DELAY = 1.0
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
            if not self._stopping:
                self.connected.set()  # Docker down: do not hold the start-up back any longer
                await asyncio.sleep(RECONNECT_DELAY)

    async def _follow(self) -> None:
        engine = self.context.engine
        filters = {
            "type": ["container"],
            "event": ["die"],
            "label": labels.instance_filter(self.context.settings.instance),
        }
        self._stream = await engine.call("events", engine.api.events, decode=True, filters=filters)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pump = threading.Thread(
            target=self._pump, args=(self._stream, queue, loop), name="docker-events", daemon=True
        )
        pump.start()
        await self.reconcile()
        try:
            # The firewall rebuilt from Docker and the database (at start-up, and after an
            # engine restart, which recreates DOCKER-USER without the platform's jump).
            await self.context.guard.resync()
        except Exception:
            logger.exception("sandbox network rules could not be rebuilt")
        self.connected.set()
        logger.info("following docker events")
        while True:
            event = await queue.get()
            if event is _END:
                if not self._stopping:
                    logger.warning("docker event stream ended")
                return
            sandbox_id = (event.get("Actor", {}).get("Attributes") or {}).get(labels.SANDBOX_ID)
            if sandbox_id:
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

    def _spawn(self, sandbox_id: uuid.UUID) -> None:
        task = asyncio.create_task(self._observe(sandbox_id))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _observe(self, sandbox_id: uuid.UUID) -> None:
        try:
            async with self.context.locks.hold(sandbox_id):
                await self.context.lifecycle.observe(sandbox_id)
        except Exception:
            logger.exception("could not record a container exit", extra={"sandboxId": str(sandbox_id)})

    async def reconcile(self) -> None:
        """Check every sandbox recorded `running` whose container does not run (any more)."""
        recorded = await self.context.repository.sandboxes_in_status([Status.RUNNING])
        if not recorded:
            return
        containers = await self.context.engine.instance_containers(self.context.settings.instance)
        running = {
            c["Labels"].get(labels.SANDBOX_ID)
            for c in containers
            if c.get("State") == "running" and c.get("Labels")
        }
        stale = [sandbox_id for sandbox_id in recorded if str(sandbox_id) not in running]
        if stale:
            logger.info("reconciling sandboxes whose container no longer runs", extra={"count": len(stale)})
        await asyncio.gather(*(self._observe(sandbox_id) for sandbox_id in stale))
