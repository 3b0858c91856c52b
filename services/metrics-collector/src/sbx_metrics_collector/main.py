"""`sbx-metrics-collector`: per-sandbox CPU, memory, network, block I/O and pids, sampled from
cgroup files into the KV bucket `sbx_metrics` and Prometheus. Writes no table."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from pathlib import Path

import docker
from nats.aio.client import Client as NatsClient
from sbx_common.tasks import cancel_and_wait
from sbx_common.worker import run_worker

from sbx_metrics_collector import gauges
from sbx_metrics_collector.collector import STATS_THREADS, Collector, run_rounds
from sbx_metrics_collector.config import CollectorSettings
from sbx_metrics_collector.sampler import Sampler


def raise_open_files_limit() -> None:
    """Seven counter files stay open per sandbox: allow as many descriptors as the host does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class MetricsCollector:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self._client: docker.DockerClient | None = None
        self._collector: Collector | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, nc: NatsClient) -> None:
        raise_open_files_limit()
        s = self.settings
        self._client = docker.from_env(max_pool_size=STATS_THREADS + 4)
        sampler = Sampler(self._client, Path(s.metrics_cgroup_root), Path(s.metrics_proc_root))
        self._collector = Collector(self._client, sampler, s.instance, s.metrics_discovery_interval_seconds)
        gauges.register_sandbox_series(self._collector.latest_samples)
        await self._collector.bind(nc)
        await self._collector.watch_events()
        self._task = asyncio.create_task(run_rounds(self._collector, s.metrics_interval_seconds))

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        if self._collector is not None:
            await self._collector.close()
        if self._client is not None:
            self._client.close()

    async def checks(self) -> dict[str, bool]:
        return {"docker": self._collector is not None and self._collector.docker_ok}


def main() -> None:
    settings = CollectorSettings()
    run_worker("metrics-collector", settings, MetricsCollector(settings))
