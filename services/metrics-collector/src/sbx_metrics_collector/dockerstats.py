"""The slow path: a container's counters from Docker's stats API, used only when its cgroup
files cannot be read here (another cgroup layout, no access to the host's /sys or /proc).

`one_shot` asks for a single reading (no second sample a second later): the CPU percentage is
computed from the collector's own previous reading, as on the fast path.
"""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import DockerException, NotFound

from sbx_metrics_collector.counters import ContainerGone, Counters


def counters_from_stats(stats: dict[str, Any]) -> Counters:
    if not stats.get("read") or stats["read"].startswith("0001-"):
        raise ContainerGone("the container is not running")
    cpu = stats.get("cpu_stats", {}).get("cpu_usage", {})
    memory = stats.get("memory_stats", {})
    memory_stat = memory.get("stats", {})
    inactive = memory_stat.get("total_inactive_file", memory_stat.get("inactive_file", 0))
    usage = int(memory.get("usage", 0))
    read_bytes = write_bytes = 0
    for entry in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read_bytes += int(entry.get("value", 0))
        elif op == "write":
            write_bytes += int(entry.get("value", 0))
    networks = (stats.get("networks") or {}).values()
    return Counters(
        cpu_ns=int(cpu.get("total_usage", 0)),
        memory_usage=usage - inactive if inactive < usage else usage,
        memory_limit=int(memory.get("limit", 0)),
        read_bytes=read_bytes,
        write_bytes=write_bytes,
        pids=int((stats.get("pids_stats") or {}).get("current", 0)),
        rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks),
        tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks),
        rx_packets=sum(int(n.get("rx_packets", 0)) for n in networks),
        tx_packets=sum(int(n.get("tx_packets", 0)) for n in networks),
    )


class DockerStatsReader:
    """Blocking: call it from a worker thread."""

    def __init__(self, client: docker.DockerClient, container_id: str, one_shot: bool = True) -> None:
        self._client = client
        self._container_id = container_id
        self._one_shot = one_shot

    def read(self) -> Counters:
        try:
            stats = self._client.api.stats(self._container_id, stream=False, one_shot=self._one_shot)
        except NotFound as exc:
            raise ContainerGone(str(exc)) from exc
        except DockerException as exc:
            raise ContainerGone(f"docker stats failed: {exc}") from exc
        return counters_from_stats(stats)

    def close(self) -> None:
        return None
