"""Snapshots and volumes: the `snapshot`, `snapshot_delete` and `volume_delete` commands, and
the volumes a sandbox's container needs before it starts.

The orchestrator writes what became of each (`snapshot_runtime`, `volume_runtime`); the API
writes what the user asked for (`snapshots`, `volumes`). Every step converges from whatever it
finds, so a redelivered command does no harm: a snapshot already `ready` is announced as it is,
an image or volume already gone is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import docker.errors
from sbx_common import labels
from sbx_common.messages import SandboxCommand

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine import volumes
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.errors import SandboxFailed
from sbx_orchestrator.repository import Repository, SandboxRecord

logger = logging.getLogger(__name__)

READY = "ready"
FAILED = "failed"
CREATING = "creating"
DELETED = "deleted"
SNAPSHOT_POLL = 0.1


class Storage:
    def __init__(self, settings: OrchestratorSettings, repository: Repository, engine: DockerEngine) -> None:
        self.settings = settings
        self.repository = repository
        self.engine = engine
        self.root = settings.volumes_root()

    # --- snapshots ---

    async def snapshot(self, command: SandboxCommand, sandbox: SandboxRecord) -> bool:
        """Commit the sandbox's container to the snapshot's image (True: ready)."""
        snapshot_id = command.snapshot_id
        if snapshot_id is None:
            return False
        record = await self.repository.load_snapshot(snapshot_id)
        if record is None or record.owner_id != command.owner_id or record.status in (READY, FAILED, DELETED):
            return record is not None and record.status == READY
        image = labels.snapshot_image(snapshot_id)
        if record.deleted:
            await self.engine.remove_image(image)
            await self.repository.write_snapshot(snapshot_id, DELETED)
            return False
        await self.repository.write_snapshot(snapshot_id, CREATING)
        info = await self.engine.inspect(labels.container_name(sandbox.id))
        if info is None:
            await self.repository.write_snapshot(snapshot_id, FAILED, reason="the sandbox has no container")
            return False
        image_labels = {
            labels.PLATFORM: labels.PLATFORM_VALUE,
            labels.INSTANCE: self.settings.instance,
            labels.OWNER_ID: str(sandbox.owner_id),
            labels.SANDBOX_ID: str(sandbox.id),
            labels.SNAPSHOT_ID: str(snapshot_id),
        }
        try:
            committed = await self.engine.commit(str(info["Id"]), image, image_labels)
        except docker.errors.APIError as exc:
            if exc.status_code is not None and 400 <= exc.status_code < 500:
                reason = f"the filesystem could not be committed: {str(exc.explanation or exc)[:200]}"
                await self.repository.write_snapshot(snapshot_id, FAILED, reason=reason)
                return False
            raise
        await self.repository.write_snapshot(snapshot_id, READY, size_bytes=int(committed.get("Size") or 0))
        logger.info("snapshot ready", extra={"snapshotId": str(snapshot_id), "sandboxId": str(sandbox.id)})
        return True

    async def delete_snapshot(self, command: SandboxCommand) -> None:
        """Remove a deleted snapshot's image (a container made from it keeps its layers)."""
        if command.snapshot_id is None:
            return
        await self.engine.remove_image(labels.snapshot_image(command.snapshot_id))
        if await self.repository.load_snapshot(command.snapshot_id) is not None:
            await self.repository.write_snapshot(command.snapshot_id, DELETED)

    async def wait_for_snapshot(self, snapshot_id: uuid.UUID) -> None:
        """Before a sandbox is made from a snapshot: wait while its image is being made (a
        replicate with `withFilesystem` sends both commands at once)."""
        deadline = time.monotonic() + self.settings.snapshot_wait_timeout
        while True:
            record = await self.repository.load_snapshot(snapshot_id)
            if record is None or record.status in (FAILED, DELETED):
                raise SandboxFailed("the snapshot is not available")
            if record.status == READY:
                if not await self.engine.has_image(labels.snapshot_image(snapshot_id)):
                    raise SandboxFailed("the snapshot's image is missing")
                return
            if time.monotonic() > deadline:
                raise SandboxFailed("the snapshot was not made in time")
            await asyncio.sleep(SNAPSHOT_POLL)

    async def release_hidden_snapshot(self, snapshot_id: uuid.UUID) -> None:
        """A replicate's own snapshot is no longer needed once the copy's container exists."""
        record = await self.repository.load_snapshot(snapshot_id)
        if record is not None and record.hidden and record.status != DELETED:
            await self.engine.remove_image(labels.snapshot_image(snapshot_id))
            await self.repository.write_snapshot(snapshot_id, DELETED)

    # --- volumes ---

    async def prepare_volumes(self, sandbox: SandboxRecord) -> None:
        """Each volume of the sandbox made (on first use) and mounted, before its container
        is created or started."""
        for mount in sandbox.volumes:
            if await self.repository.volume_deleted(mount.volume_id):
                raise SandboxFailed("a volume of the sandbox has been deleted")
            try:
                await asyncio.to_thread(volumes.ensure, self.root, mount.volume_id, mount.size_mib)
            except (volumes.VolumeError, OSError) as exc:
                raise SandboxFailed(f"a volume could not be mounted: {exc}") from None
            await self.repository.write_volume(
                mount.volume_id,
                READY,
                await asyncio.to_thread(volumes.used_bytes, self.root, mount.volume_id),
            )

    async def refresh_usage(self, sandbox: SandboxRecord) -> None:
        """Record how full the sandbox's volumes are (after it stopped or was destroyed)."""
        for mount in sandbox.volumes:
            used = await asyncio.to_thread(volumes.used_bytes, self.root, mount.volume_id)
            if used is not None:
                await self.repository.write_volume(mount.volume_id, READY, used)

    async def delete_volume(self, command: SandboxCommand) -> None:
        """Unmount a deleted volume and remove its filesystem image."""
        if command.volume_id is None:
            return
        await asyncio.to_thread(volumes.remove, self.root, command.volume_id)
        await self.repository.write_volume(command.volume_id, DELETED, 0)
