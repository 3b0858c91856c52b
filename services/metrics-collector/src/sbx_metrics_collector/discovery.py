"""Finding the running sandbox containers of this instance, through the Docker API.

Blocking (docker SDK): call from a worker thread. Docker's event stream reports starts as they
happen; a periodic listing catches anything missed. A container is inspected once, when it is
first seen, for its init pid, CPU limit and start time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
from docker.errors import NotFound
from sbx_common import labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    container_id: str
    sandbox_id: str
    pid: int
    cores: float  # the CPU limit in cores (the host's core count when unlimited)
    started_at: float  # epoch seconds


def parse_docker_time(value: str) -> float:
    """Docker's RFC 3339 timestamps carry nanoseconds; Python's parser takes microseconds."""
    head, _, fraction = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00").timestamp()


def cores_of(host_config: dict[str, Any]) -> float:
    nano_cpus = host_config.get("NanoCpus") or 0
    if nano_cpus:
        return float(nano_cpus) / 1e9
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 0
    if quota > 0 and period > 0:
        return float(quota) / float(period)
    return float(os.cpu_count() or 1)


class Discovery:
    def __init__(self, client: docker.DockerClient, instance: str) -> None:
        self._client = client
        self._filters = {
            "status": "running",
            "label": [*labels.instance_filter(instance), labels.SANDBOX_ID],
        }
        self._instance = instance

    def running(self) -> dict[str, str]:
        """container id -> sandbox id of every running sandbox container of this instance."""
        summaries: list[dict[str, Any]] = self._client.api.containers(filters=self._filters)
        return {s["Id"]: s["Labels"][labels.SANDBOX_ID] for s in summaries}

    def inspect(self, container: str) -> ContainerInfo | None:
        """Details of a running sandbox container of this instance (by id or name), else None."""
        try:
            data = self._client.api.inspect_container(container)
        except NotFound:
            return None
        container_labels = data["Config"].get("Labels") or {}
        state = data.get("State") or {}
        if (
            container_labels.get(labels.INSTANCE) != self._instance
            or labels.SANDBOX_ID not in container_labels
            or not state.get("Running")
            or not state.get("Pid")
        ):
            return None
        return ContainerInfo(
            container_id=data["Id"],
            sandbox_id=container_labels[labels.SANDBOX_ID],
            pid=int(state["Pid"]),
            cores=cores_of(data.get("HostConfig") or {}),
            started_at=parse_docker_time(state["StartedAt"]),
        )


class StartWatcher:
    """Follows Docker's event stream for starts of this instance's sandbox containers, so a new
    container is sampled at once rather than at the next listing. Runs in its own thread (the
    stream blocks) and reconnects after Docker restarts; `on_start` gets the container id."""

    def __init__(self, client: docker.DockerClient, instance: str, on_start: Callable[[str], None]) -> None:
        self._client = client
        self._filters = {
            "type": "container",
            "event": ["start"],
            "label": [*labels.instance_filter(instance), labels.SANDBOX_ID],
        }
        self._on_start = on_start
        self._stream: Any = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._stream = self._client.events(decode=True, filters=self._filters)
                for event in self._stream:
                    if event.get("id"):
                        self._on_start(event["id"])
            except Exception as exc:
                if self._closed.is_set():
                    return
                logger.warning("docker event stream lost", extra={"error": repr(exc)})
            self._closed.wait(1.0)
