"""The containers being sampled and their previous CPU points; synchronous and NATS-free.

Each container is read on the fast path (cgroup files) when its files can be opened here, else
through Docker's stats API (blocking: the collector runs those reads in worker threads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import docker

from sbx_metrics_collector.cgroups import CgroupReader, CgroupUnavailable
from sbx_metrics_collector.counters import Counters
from sbx_metrics_collector.discovery import ContainerInfo
from sbx_metrics_collector.dockerstats import DockerStatsReader
from sbx_metrics_collector.sample import CpuPoint, SampleJson, build_sample, cpu_percent

CGROUP = "cgroup"
DOCKER_STATS = "docker_stats"


def host_memory_bytes(proc_root: Path) -> int:
    """MemTotal of /proc/meminfo: the limit shown for a sandbox without a memory limit."""
    try:
        for line in (proc_root / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(slots=True)
class Tracked:
    info: ContainerInfo
    reader: CgroupReader | DockerStatsReader
    path: str  # CGROUP or DOCKER_STATS
    previous: CpuPoint


class Sampler:
    def __init__(
        self,
        client: docker.DockerClient,
        cgroup_root: Path,
        proc_root: Path,
        *,
        force_docker_stats: bool = False,
    ) -> None:
        self._client = client
        self._cgroup_root = cgroup_root
        self._proc_root = proc_root
        self._force_docker_stats = force_docker_stats
        self.host_memory = host_memory_bytes(proc_root)
        self.tracked: dict[str, Tracked] = {}  # by sandbox id

    def add(self, info: ContainerInfo) -> Tracked:
        """Start sampling a container; the first CPU point is its start (zero CPU used)."""
        self.drop(info.sandbox_id)
        reader, path = self._open_reader(info)
        since_start_ns = int((time.time() - info.started_at) * 1e9)
        tracked = Tracked(info, reader, path, CpuPoint(time.monotonic_ns() - since_start_ns, 0))
        self.tracked[info.sandbox_id] = tracked
        return tracked

    def _open_reader(self, info: ContainerInfo) -> tuple[CgroupReader | DockerStatsReader, str]:
        if not self._force_docker_stats:
            try:
                return CgroupReader(self._cgroup_root, self._proc_root, info.container_id, info.pid), CGROUP
            except CgroupUnavailable:
                pass
        return DockerStatsReader(self._client, info.container_id), DOCKER_STATS

    def drop(self, sandbox_id: str) -> Tracked | None:
        tracked = self.tracked.pop(sandbox_id, None)
        if tracked is not None:
            tracked.reader.close()
        return tracked

    def read(self, tracked: Tracked) -> tuple[Counters, int]:
        """Counters and the monotonic instant they were read at; raises ContainerGone."""
        counters = tracked.reader.read()
        return counters, time.monotonic_ns()

    def sample(self, tracked: Tracked, counters: Counters, at_ns: int, timestamp: str) -> SampleJson:
        current = CpuPoint(at_ns, counters.cpu_ns)
        percent = cpu_percent(tracked.previous, current, tracked.info.cores)
        tracked.previous = current
        return build_sample(counters, percent, tracked.info.cores, self.host_memory, timestamp)

    def close(self) -> None:
        for sandbox_id in list(self.tracked):
            self.drop(sandbox_id)
