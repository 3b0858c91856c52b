"""Snapshots and volumes left half-way: commands re-published, images without a snapshot removed.

- a snapshot whose `snapshot` command was never taken up (no `snapshot_runtime` row after
  `untaken_after`), or that is still `creating` after `stuck_timeout` (the orchestrator died
  during the commit): its command is published again (a stuck one under a new message id, at
  most `max_republish` times; then the orchestrator's last delivery marks it `failed`);
- a snapshot or volume the user deleted whose image or filesystem is not removed yet (no
  `deleted` runtime status after `untaken_after`): `snapshot_delete` / `volume_delete` again;
- a snapshot image of this instance (labels `sbx.platform`, `sbx.instance`, `sbx.snapshot-id`)
  older than the grace period that nothing needs any more: removed here, as orphan containers
  are (see `_NEEDED_SNAPSHOTS`). That covers every way an image outlives its use: the owner
  deleted (the rows cascade), a snapshot deleted while it was being made, a commit that
  succeeded when its attempt as a whole failed (`failed`), and a replicate's hidden snapshot
  whose copy never got a container (its create could not be published and was withdrawn, it
  failed, or it was destroyed first).
Command ids are deterministic, so two reapers make one command.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import asyncpg
import docker
from docker.errors import DockerException, NotFound
from sbx_common import labels
from sbx_common.messages import SandboxCommand
from sbx_common.status import Verb

from sbx_reaper.command_publisher import NAMESPACE, CommandPublisher
from sbx_reaper.orphans import parse_uuid

logger = logging.getLogger(__name__)

_UNSETTLED_SNAPSHOTS = """
SELECT p.id, p.owner_id, p.sandbox_id, p.command_id, r.status, p.host_id,
       EXTRACT(EPOCH FROM now() - COALESCE(r.updated_at, p.created_at))::float8 AS age
FROM snapshots p LEFT JOIN snapshot_runtime r ON r.snapshot_id = p.id
WHERE p.deleted_at IS NULL AND (r.status IS NULL OR r.status = 'creating')
  AND now() - COALESCE(r.updated_at, p.created_at) > make_interval(secs => $1)
LIMIT 500
"""

_DELETED_SNAPSHOTS = """
SELECT p.id, p.owner_id, p.sandbox_id, p.host_id FROM snapshots p
LEFT JOIN snapshot_runtime r ON r.snapshot_id = p.id
WHERE p.deleted_at IS NOT NULL AND r.status IS DISTINCT FROM 'deleted'
  AND now() - p.deleted_at > make_interval(secs => $1)
LIMIT 500
"""

_DELETED_VOLUMES = """
SELECT v.id, v.owner_id, v.host_id FROM volumes v LEFT JOIN volume_runtime r ON r.volume_id = v.id
WHERE v.deleted_at IS NOT NULL AND r.status IS DISTINCT FROM 'deleted' AND v.host_id IS NOT NULL
  AND now() - v.deleted_at > make_interval(secs => $1)
LIMIT 500
"""


# The snapshots (of those given) whose image must stay: not deleted, not failed, and, for a
# replicate's hidden snapshot, a copy made from it still waiting for its container (once that
# exists the orchestrator releases the image itself).
_NEEDED_SNAPSHOTS = """
SELECT p.id FROM snapshots p LEFT JOIN snapshot_runtime r ON r.snapshot_id = p.id
WHERE p.id = ANY($1::uuid[]) AND p.deleted_at IS NULL
  AND COALESCE(r.status, 'creating') NOT IN ('failed', 'deleted')
  AND (NOT p.hidden OR EXISTS (
      SELECT 1 FROM sandboxes s LEFT JOIN sandbox_runtime sr ON sr.sandbox_id = s.id
      WHERE s.snapshot_id = p.id AND sr.container_id IS NULL
        AND COALESCE(sr.status, 'pending') NOT IN ('destroyed', 'expired', 'failed')))
"""


class StorageRepair:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: CommandPublisher,
        instance: str,
        *,
        untaken_after: float,
        stuck_timeout: float,
        max_republish: int,
        grace: float,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._instance = instance
        self._untaken_after = untaken_after
        self._stuck_timeout = stuck_timeout
        self._max_republish = max_republish
        self._grace = grace
        self._client: docker.DockerClient | None = None

    async def sweep(self) -> None:
        """The database side: commands published again (any reaper)."""
        await self._republish()

    async def sweep_images(self) -> None:
        """The Docker side: snapshot images without a row (a reaper on the images' host)."""
        await self._remove_orphan_images()

    async def _republish(self) -> None:
        for row in await self._pool.fetch(_UNSETTLED_SNAPSHOTS, self._untaken_after):
            command = SandboxCommand(
                id=row["command_id"],
                verb=Verb.SNAPSHOT,
                sandbox_id=row["sandbox_id"],
                owner_id=row["owner_id"],
                snapshot_id=row["id"],
                reason="repair",
                host_id=row["host_id"],
            )
            if row["status"] is None:
                await self._publisher.publish(command)
                continue
            attempt = int(row["age"] // self._stuck_timeout)
            if 1 <= attempt <= self._max_republish:
                await self._publisher.publish(command, f"{command.id}:repair-{attempt}")
        for row in await self._pool.fetch(_DELETED_SNAPSHOTS, self._untaken_after):
            await self._publisher.publish(
                SandboxCommand(
                    id=uuid.uuid5(NAMESPACE, f"{row['id']}:snapshot-delete"),
                    verb=Verb.SNAPSHOT_DELETE,
                    sandbox_id=row["sandbox_id"],
                    owner_id=row["owner_id"],
                    snapshot_id=row["id"],
                    reason="repair",
                    host_id=row["host_id"],
                )
            )
        for row in await self._pool.fetch(_DELETED_VOLUMES, self._untaken_after):
            await self._publisher.publish(
                SandboxCommand(
                    id=uuid.uuid5(NAMESPACE, f"{row['id']}:volume-delete"),
                    verb=Verb.VOLUME_DELETE,
                    sandbox_id=row["id"],
                    owner_id=row["owner_id"],
                    volume_id=row["id"],
                    reason="repair",
                    host_id=row["host_id"],
                )
            )

    async def _remove_orphan_images(self) -> None:
        try:
            images = await asyncio.to_thread(self._snapshot_images)
        except DockerException as exc:
            logger.warning("docker unavailable: snapshot image sweep skipped", extra={"error": str(exc)})
            return
        now = time.time()
        old = {sid: tags for sid, created, tags in images if sid is not None and now - created >= self._grace}
        if not old:
            return
        kept = {r["id"] for r in await self._pool.fetch(_NEEDED_SNAPSHOTS, list(old))}
        for snapshot_id in set(old) - kept:
            if await asyncio.to_thread(self._remove, labels.snapshot_image(snapshot_id)):
                logger.info("orphan snapshot image removed", extra={"snapshotId": str(snapshot_id)})

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.from_env()
        return self._client

    def _snapshot_images(self) -> list[tuple[uuid.UUID | None, float, list[str]]]:
        found: list[dict[str, Any]] = self._docker().api.images(
            filters={"label": [*labels.instance_filter(self._instance), labels.SNAPSHOT_ID]}
        )
        return [
            (
                parse_uuid((image.get("Labels") or {}).get(labels.SNAPSHOT_ID)),
                float(image.get("Created", 0)),
                list(image.get("RepoTags") or []),
            )
            for image in found
        ]

    def _remove(self, image: str) -> bool:
        try:
            self._docker().api.remove_image(image, force=True)
        except NotFound:
            return False
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
