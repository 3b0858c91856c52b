"""The `disk` limit where the engine cannot enforce it: running sandboxes' writable layers, measured.

overlay2 enforces `--storage-opt size=` only on xfs with project quotas. Elsewhere (ext4, as on
most hosts) every `disk_check_interval` seconds each running sandbox's writable layer is measured
and a sandbox over its limit is stopped with the reason `disk quota exceeded` (see
`Lifecycle.stop_over_quota`). The measure is a walk of the overlay2 upper directory that ends as
soon as the limit is passed or after `disk_walk_max_entries` files; where that directory cannot be
read (the orchestrator in a container without the data root) or has too many files, Docker's own
measure (`inspect --size`, which walks the layer in the engine) is used instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from contextlib import suppress
from typing import Any

from sbx_common import labels
from sbx_common.tasks import cancel_and_wait

from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.engine.containers import DISK_LABEL, MIB

logger = logging.getLogger(__name__)


class WalkTooLong(Exception):
    """The directory holds more entries than one measurement may visit."""


def used_bytes(root: str, limit: int, max_entries: int) -> int:
    """Bytes allocated under `root` (st_blocks), counting stops once past `limit`.

    Raises OSError when `root` cannot be read, WalkTooLong past `max_entries` entries. Entries
    that vanish during the walk are skipped (the sandbox keeps writing while it is measured).
    """
    total = 0
    visited = 0
    pending = [root]
    first = True
    while pending:
        directory = pending.pop()
        try:
            scanner = os.scandir(directory)
        except FileNotFoundError:
            if first:
                raise
            continue
        first = False
        with scanner:
            for entry in scanner:
                visited += 1
                if visited > max_entries:
                    raise WalkTooLong(root)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                except FileNotFoundError:
                    continue
                if total > limit:
                    return total
    return total


class DiskWatcher:
    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self._task: asyncio.Task[None] | None = None
        # container id -> its upper directory, or None when it has to be measured by Docker.
        self._upper: dict[str, str | None] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="disk-watcher")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _run(self) -> None:
        interval = self.context.settings.disk_check_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("disk check failed", extra={"error": repr(exc)})

    async def sweep(self) -> None:
        """Measure every running sandbox once; stop those over their limit."""
        engine = self.context.engine
        if not await engine.ping() or (await engine.features()).storage_quota:
            return
        containers = await engine.instance_containers(self.context.settings.instance)
        running = [c for c in containers if c.get("State") == "running"]
        self._upper = {c["Id"]: self._upper[c["Id"]] for c in running if c["Id"] in self._upper}
        for container in running:
            await self._check(container)

    async def _check(self, container: dict[str, Any]) -> None:
        container_labels = container.get("Labels") or {}
        try:
            sandbox_id = uuid.UUID(container_labels[labels.SANDBOX_ID])
            limit = int(container_labels[DISK_LABEL]) * MIB
        except (KeyError, ValueError):
            return  # a container made before disk limits existed
        container_id = str(container["Id"])
        used = await self._measure(container_id, limit)
        if used is None or used <= limit:
            return
        async with self.context.locks.hold(sandbox_id):
            stopped = await self.context.lifecycle.stop_over_quota(sandbox_id, container_id)
        if stopped:
            logger.info(
                "sandbox stopped over its disk limit",
                extra={"sandboxId": str(sandbox_id), "usedBytes": used, "limitBytes": limit},
            )

    async def _measure(self, container_id: str, limit: int) -> int | None:
        engine = self.context.engine
        if container_id not in self._upper:
            self._upper[container_id] = await engine.upper_dir(container_id)
        upper = self._upper[container_id]
        if upper is not None:
            max_entries = self.context.settings.disk_walk_max_entries
            try:
                return await asyncio.to_thread(used_bytes, upper, limit, max_entries)
            except WalkTooLong:
                pass  # too many files to walk every few seconds: Docker measures this one
            except OSError:
                # Not readable from here (e.g. the orchestrator runs in a container): ask Docker.
                self._upper[container_id] = None
        with suppress(Exception):
            return await engine.layer_size(container_id)
        return None
