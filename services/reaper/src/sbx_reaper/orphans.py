"""Removing orphan containers: containers of this instance that no live sandbox owns.

A container is an orphan when its sandbox has no row or has ended (`destroyed`, `expired`).
Only containers carrying the platform label and this installation's instance label are looked
at, and none younger than the grace period, so a create in flight is never touched. The docker
SDK is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from sbx_common import labels

from sbx_reaper import metrics
from sbx_reaper.repository import SandboxReader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    container_id: str
    sandbox_id: uuid.UUID | None  # None when the label is missing or not a uuid
    age: float


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class OrphanReaper:
    def __init__(self, reader: SandboxReader, instance: str, grace: float) -> None:
        self._reader = reader
        self._instance = instance
        self._grace = grace
        self._client: docker.DockerClient | None = None
        self.docker_ok = False

    async def sweep(self) -> None:
        try:
            candidates = await asyncio.to_thread(self._list)
        except DockerException as exc:
            self.docker_ok = False
            logger.warning("docker unavailable: orphan sweep skipped", extra={"error": str(exc)})
            return
        self.docker_ok = True
        old = [c for c in candidates if c.age >= self._grace]
        if not old:
            return
        live = await self._reader.live_ids([c.sandbox_id for c in old if c.sandbox_id is not None])
        for candidate in old:
            if candidate.sandbox_id in live:
                continue
            if await asyncio.to_thread(self._remove, candidate.container_id):
                metrics.ORPHANS_REAPED.inc()
                logger.info(
                    "orphan container removed",
                    extra={
                        "containerId": candidate.container_id[:12],
                        "sandboxId": str(candidate.sandbox_id) if candidate.sandbox_id else None,
                    },
                )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.from_env()
        return self._client

    def _list(self) -> list[Candidate]:
        summaries: list[dict[str, Any]] = self._docker().api.containers(
            all=True, filters={"label": labels.instance_filter(self._instance)}
        )
        now = time.time()
        return [
            Candidate(
                container_id=s["Id"],
                sandbox_id=parse_uuid((s.get("Labels") or {}).get(labels.SANDBOX_ID)),
                age=now - float(s.get("Created", now)),
            )
            for s in summaries
        ]

    def _remove(self, container_id: str) -> bool:
        """Force-remove; False if another reaper (or the orchestrator) removed it first."""
        try:
            self._docker().api.remove_container(container_id, force=True)
        except NotFound:
            return False
        except DockerException as exc:
            if "removal of container" in str(exc) and "already in progress" in str(exc):
                return False
            raise
        return True
