"""The sampling loop: every interval, the latest sample of every running sandbox of this
instance into the KV bucket `sbx_metrics` (key = sandbox id) and into the Prometheus series.

Containers are found by listing Docker each round (and inspected once when first seen). Events
make changes immediate: `running` starts sampling a sandbox at once (its first sample averages
CPU since the container started), and `stopping`, `stopped`, `destroyed`, `failed`, `expired`
stop it and delete its key before Docker even lists the container as gone.

Puts go out as plain publishes on the bucket's subjects, not acknowledged one by one: only the
latest sample matters, the next round replaces a lost one, and an acknowledgement per sandbox
per round would cost a round trip and CPU for nothing. Deletes are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping

import docker
from docker.errors import DockerException
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue
from sbx_common import labels, subjects
from sbx_common.status import Status
from sbx_common.timeutil import rfc3339, utcnow
from sbx_common.topology import KV_METRICS

from sbx_metrics_collector import gauges
from sbx_metrics_collector.counters import ContainerGone
from sbx_metrics_collector.discovery import ContainerInfo, Discovery
from sbx_metrics_collector.sample import SampleJson
from sbx_metrics_collector.sampler import CGROUP, DOCKER_STATS, Sampler, Tracked

logger = logging.getLogger(__name__)

STOP_STATUSES = (Status.STOPPING, Status.STOPPED, Status.DESTROYED, Status.FAILED, Status.EXPIRED)


class Collector:
    def __init__(self, client: docker.DockerClient, sampler: Sampler, instance: str) -> None:
        self._client = client
        self._sampler = sampler
        self._discovery = Discovery(client, instance)
        self._nc: NatsClient | None = None
        self._kv: KeyValue | None = None
        self._subject_prefix = f"$KV.{KV_METRICS}."
        self._subs: list[Subscription] = []
        # Sandboxes an event said are stopping: not sampled again while Docker still lists
        # their container as running, until a `running` event (or the container is gone).
        self._stopped: set[str] = set()
        self.latest: dict[str, SampleJson] = {}
        self.docker_ok = False

    async def bind(self, nc: NatsClient) -> None:
        """Bind the KV bucket (declared by the topology, never created here)."""
        self._nc = nc
        self._kv = await nc.jetstream().key_value(KV_METRICS)

    async def watch_events(self) -> None:
        assert self._nc is not None
        for status in (*STOP_STATUSES, Status.RUNNING):
            self._subs.append(
                await self._nc.subscribe(subjects.event("*", "*", status.value), cb=self._on_event)
            )

    async def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        self._sampler.close()

    def latest_samples(self) -> Mapping[str, SampleJson]:
        return self.latest

    async def collect_round(self) -> int:
        """Sample every running sandbox once; returns how many were published."""
        try:
            listed = await asyncio.to_thread(self._discovery.running)
        except DockerException as exc:
            if self.docker_ok:
                logger.warning("docker unavailable: sampling paused", extra={"error": str(exc)})
            self.docker_ok = False
            return 0
        self.docker_ok = True
        await self._reconcile(listed)
        timestamp = rfc3339(utcnow()) or ""
        published = 0
        slow: list[Tracked] = []
        for sandbox_id, tracked in list(self._sampler.tracked.items()):
            if tracked.path == DOCKER_STATS:
                slow.append(tracked)
                continue
            # Synchronous from here to the publish: nothing can drop this container meanwhile.
            if self._sampler.tracked.get(sandbox_id) is not tracked:
                continue
            try:
                counters, at_ns = self._sampler.read(tracked)
            except ContainerGone:
                await self._forget(sandbox_id)
                continue
            await self._put(sandbox_id, self._sampler.sample(tracked, counters, at_ns, timestamp))
            published += 1
        if slow:
            published += await self._collect_slow(slow, timestamp)
        self._count_paths()
        return published

    async def _collect_slow(self, slow: list[Tracked], timestamp: str) -> int:
        results = await asyncio.gather(
            *(asyncio.to_thread(self._sampler.read, t) for t in slow), return_exceptions=True
        )
        published = 0
        for tracked, result in zip(slow, results, strict=True):
            sandbox_id = tracked.info.sandbox_id
            if self._sampler.tracked.get(sandbox_id) is not tracked:
                continue  # dropped while Docker answered
            if isinstance(result, BaseException):
                if not isinstance(result, ContainerGone):
                    logger.warning(
                        "docker stats failed", extra={"sandboxId": sandbox_id, "error": repr(result)}
                    )
                await self._forget(sandbox_id)
                continue
            counters, at_ns = result
            await self._put(sandbox_id, self._sampler.sample(tracked, counters, at_ns, timestamp))
            published += 1
        return published

    async def _reconcile(self, listed: dict[str, str]) -> None:
        """Follow Docker's list: forget containers gone, start on new ones."""
        for sandbox_id, tracked in list(self._sampler.tracked.items()):
            if tracked.info.container_id not in listed:
                await self._forget(sandbox_id)
        self._stopped &= set(listed.values())
        new = [
            cid
            for cid, sid in listed.items()
            if sid not in self._sampler.tracked and sid not in self._stopped
        ]
        if not new:
            return
        infos = await asyncio.to_thread(lambda: [self._discovery.inspect(cid) for cid in new])
        for info in infos:
            self._track(info)

    def _track(self, info: ContainerInfo | None) -> Tracked | None:
        if info is None or info.sandbox_id in self._stopped:
            return None
        current = self._sampler.tracked.get(info.sandbox_id)
        if current is not None and current.info.container_id == info.container_id:
            return None
        tracked = self._sampler.add(info)
        logger.info(
            "sampling sandbox",
            extra={"sandboxId": info.sandbox_id, "containerId": info.container_id[:12], "path": tracked.path},
        )
        return tracked

    async def _on_event(self, msg: Msg) -> None:
        # sbx.evt.<ownerId>.<sandboxId>.<status>: the subject says all that is needed.
        parts = msg.subject.split(".")
        if len(parts) != 5:
            return
        sandbox_id, status = parts[3], parts[4]
        if status == Status.RUNNING:
            self._stopped.discard(sandbox_id)
            await self._sample_now(sandbox_id)
        else:
            self._stopped.add(sandbox_id)
            await self._forget(sandbox_id)

    async def _sample_now(self, sandbox_id: str) -> None:
        """A sandbox just started: first sample at once rather than at the next round."""
        try:
            info = await asyncio.to_thread(self._discovery.inspect, labels.container_name(sandbox_id))
        except DockerException:
            return
        if info is None or info.sandbox_id != sandbox_id:
            return
        tracked = self._track(info)
        if tracked is None or tracked.path != CGROUP:
            return
        try:
            counters, at_ns = self._sampler.read(tracked)
        except ContainerGone:
            await self._forget(sandbox_id)
            return
        await self._put(sandbox_id, self._sampler.sample(tracked, counters, at_ns, rfc3339(utcnow()) or ""))

    async def _put(self, sandbox_id: str, sample: SampleJson) -> None:
        assert self._nc is not None
        self.latest[sandbox_id] = sample
        await self._nc.publish(
            self._subject_prefix + sandbox_id, json.dumps(sample, separators=(",", ":")).encode()
        )

    async def _forget(self, sandbox_id: str) -> None:
        """Stop sampling a sandbox and delete its key (idempotent)."""
        tracked = self._sampler.drop(sandbox_id)
        had_sample = self.latest.pop(sandbox_id, None) is not None
        if tracked is None and not had_sample:
            return
        logger.info("sampling stopped", extra={"sandboxId": sandbox_id})
        if self._kv is not None:
            try:
                await self._kv.delete(sandbox_id)
            except NatsError as exc:
                logger.warning("metrics key not deleted", extra={"sandboxId": sandbox_id, "error": repr(exc)})

    def _count_paths(self) -> None:
        counts = {CGROUP: 0, DOCKER_STATS: 0}
        for tracked in self._sampler.tracked.values():
            counts[tracked.path] += 1
        for path, count in counts.items():
            gauges.SANDBOXES.labels(path).set(count)


async def run_rounds(collector: Collector, interval: float) -> None:
    """Sample every `interval` seconds, on a fixed beat (a slow round does not shift the next)."""
    next_at = time.monotonic()
    while True:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            await collector.collect_round()
        except Exception:
            logger.exception("sampling round failed")
        gauges.ROUND_SECONDS.observe(time.perf_counter() - wall)
        gauges.ROUND_CPU_SECONDS.observe(time.process_time() - cpu)
        next_at += interval
        now = time.monotonic()
        if next_at < now:  # fell behind: skip the missed beats
            next_at = now + interval
        await asyncio.sleep(next_at - now)
