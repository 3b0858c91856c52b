"""The sampling loop: every interval, the latest sample of every running sandbox of this
instance into the KV bucket `sbx_metrics` (key = sandbox id) and into the Prometheus series.

Which containers run is learnt from Docker: its event stream reports starts as they happen
(the first sample is taken at once, averaging CPU since the container started), and a listing
every `discovery_interval` catches anything the stream missed. A container that stops is noticed
by the next round, whose reads of its cgroup files fail; the platform's events make it
immediate: `stopping`, `stopped`, `destroyed`, `failed`, `expired` stop the sampling and delete
the key before the container is even gone, and `running` resumes it. Those events are core NATS,
so one can be missed (a reconnect): a container that Docker shows started after the stop was
announced is sampled again without its `running` event.

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
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.errors import DockerException
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue
from sbx_common import labels, subjects
from sbx_common.status import Status
from sbx_common.tasks import cancel_and_wait
from sbx_common.timeutil import rfc3339, utcnow
from sbx_common.topology import KV_METRICS

from sbx_metrics_collector import gauges
from sbx_metrics_collector.counters import ContainerGone
from sbx_metrics_collector.discovery import ContainerInfo, Discovery, StartWatcher
from sbx_metrics_collector.sample import SampleJson
from sbx_metrics_collector.sampler import CGROUP, DOCKER_STATS, Sampler, Tracked

logger = logging.getLogger(__name__)

# Docker answers a stats call at its next collection tick (about a second): the fallback reads
# many containers in parallel so that a round takes a few ticks, not one per container.
STATS_THREADS = 32
# A paused sandbox is not sampled either: its numbers do not move while it is frozen, and its
# `running` event on resume starts the sampling again.
STOP_STATUSES = (
    Status.STOPPING,
    Status.STOPPED,
    Status.PAUSED,
    Status.DESTROYED,
    Status.FAILED,
    Status.EXPIRED,
)


class Collector:
    def __init__(
        self, client: docker.DockerClient, sampler: Sampler, instance: str, discovery_interval: float = 10.0
    ) -> None:
        self._sampler = sampler
        self._discovery = Discovery(client, instance)
        self._watcher = StartWatcher(client, instance, self._on_docker_start)
        self._discovery_interval = discovery_interval
        self._listed_at = float("-inf")
        self._nc: NatsClient | None = None
        self._kv: KeyValue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Sandboxes an event said are stopping, with the start time (Docker's StartedAt) of the
        # run that was stopping: that run is not sampled again while Docker still lists it, but
        # a later start is, even if its `running` event was missed.
        self._stopped: dict[str, float] = {}
        self._stats_pool = ThreadPoolExecutor(STATS_THREADS, thread_name_prefix="docker-stats")
        self.latest: dict[str, SampleJson] = {}
        self.docker_ok = False

    async def bind(self, nc: NatsClient) -> None:
        """Bind the KV bucket (declared by the topology, never created here)."""
        self._nc = nc
        self._kv = await nc.jetstream().key_value(KV_METRICS)

    async def watch_events(self) -> None:
        """Follow the platform's events (NATS) and Docker's container starts."""
        assert self._nc is not None
        self._loop = asyncio.get_running_loop()
        for status in (*STOP_STATUSES, Status.RUNNING):
            subject = subjects.event("*", "*", status.value)
            self._subs.append(await self._nc.subscribe(subject, cb=self._on_event))
        self._watcher.start()

    async def close(self) -> None:
        self._watcher.close()
        for sub in self._subs:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        await cancel_and_wait(list(self._tasks))
        self._sampler.close()
        self._stats_pool.shutdown(wait=False, cancel_futures=True)

    def latest_samples(self) -> Mapping[str, SampleJson]:
        return self.latest

    async def collect_round(self) -> int:
        """Sample every running sandbox once; returns how many samples were published."""
        if time.monotonic() - self._listed_at >= self._discovery_interval:
            await self._list_containers()
        timestamp = rfc3339(utcnow()) or ""
        published = 0
        slow: list[Tracked] = []
        for sandbox_id, tracked in list(self._sampler.tracked.items()):
            if tracked.path == DOCKER_STATS:
                slow.append(tracked)
            elif self._sampler.tracked.get(sandbox_id) is tracked:  # not dropped by an event meanwhile
                published += await self._sample(tracked, timestamp)
        if slow:
            published += await self._collect_slow(slow, timestamp)
        self._count_paths()
        return published

    async def _sample(self, tracked: Tracked, timestamp: str) -> int:
        """Read and publish one container on the fast path; 0 if it is gone."""
        sandbox_id = tracked.info.sandbox_id
        try:
            counters, at_ns = self._sampler.read(tracked)
        except ContainerGone:
            await self._forget(sandbox_id)
            return 0
        await self._put(sandbox_id, self._sampler.sample(tracked, counters, at_ns, timestamp))
        return 1

    async def _collect_slow(self, slow: list[Tracked], timestamp: str) -> int:
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self._stats_pool, self._sampler.read, t) for t in slow),
            return_exceptions=True,
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

    async def _list_containers(self) -> None:
        """Follow Docker's list: forget containers gone, start on new ones."""
        try:
            listed = await asyncio.to_thread(self._discovery.running)
        except DockerException as exc:
            if self.docker_ok:
                logger.warning("docker unavailable: discovery paused", extra={"error": str(exc)})
            self.docker_ok = False
            return
        self.docker_ok = True
        self._listed_at = time.monotonic()
        for sandbox_id, tracked in list(self._sampler.tracked.items()):
            if tracked.info.container_id not in listed:
                await self._forget(sandbox_id)
        running = set(listed.values())
        for sandbox_id in [sid for sid in self._stopped if sid not in running]:
            del self._stopped[sandbox_id]
        # Stopped ones too: inspecting tells a run started since from the one that was stopping.
        new = [cid for cid, sid in listed.items() if sid not in self._sampler.tracked]
        if new:
            infos = await asyncio.to_thread(lambda: [self._discovery.inspect(cid) for cid in new])
            for info in infos:
                self._track(info)

    def _track(self, info: ContainerInfo | None) -> Tracked | None:
        if info is None:
            return None
        stopped_run = self._stopped.get(info.sandbox_id)
        if stopped_run is not None:
            if info.started_at <= stopped_run:
                return None
            del self._stopped[info.sandbox_id]
        current = self._sampler.tracked.get(info.sandbox_id)
        if current is not None and current.info == info:
            return None  # already sampled (a restarted container has a new pid and start time)
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
            self._stopped.pop(sandbox_id, None)
            await self._start_sampling(labels.container_name(sandbox_id))
        else:
            tracked = self._sampler.tracked.get(sandbox_id)
            # Not sampled (a second stop event, or not yet seen): any run started before now is
            # the one stopping (Docker's StartedAt against this clock, as the sampler's CPU since
            # the start already compares them).
            self._stopped[sandbox_id] = tracked.info.started_at if tracked else time.time()
            await self._forget(sandbox_id)

    def _on_docker_start(self, container_id: str) -> None:
        """Called from the Docker event thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn, container_id)

    def _spawn(self, container: str) -> None:
        task = asyncio.create_task(self._start_sampling(container))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_sampling(self, container: str) -> None:
        """A sandbox container just started: its first sample now, not at the next round."""
        try:
            info = await asyncio.to_thread(self._discovery.inspect, container)
        except DockerException:
            return
        tracked = self._track(info)
        if tracked is not None and tracked.path == CGROUP:
            await self._sample(tracked, rfc3339(utcnow()) or "")

    async def _put(self, sandbox_id: str, sample: SampleJson) -> None:
        assert self._nc is not None
        self.latest[sandbox_id] = sample
        await self._nc.publish(
            subjects.metrics_kv(sandbox_id), json.dumps(sample, separators=(",", ":")).encode()
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
