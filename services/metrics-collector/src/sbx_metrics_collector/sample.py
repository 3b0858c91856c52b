"""From raw counters to the sample the API returns (`GET /sandboxes/:id/metrics`) as is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from sbx_metrics_collector.counters import Counters


class CpuJson(TypedDict):
    usagePercent: float
    cores: float


class MemoryJson(TypedDict):
    usageBytes: int
    limitBytes: int
    usagePercent: float


class NetworkJson(TypedDict):
    rxBytes: int
    txBytes: int
    rxPackets: int
    txPackets: int


class IoJson(TypedDict):
    readBytes: int
    writeBytes: int


class SampleJson(TypedDict):
    cpu: CpuJson
    memory: MemoryJson
    network: NetworkJson
    io: IoJson
    pids: int
    timestamp: str


@dataclass(frozen=True, slots=True)
class CpuPoint:
    """CPU time used (ns) at a monotonic instant (ns): two of them give a percentage."""

    at_ns: int
    cpu_ns: int


def cpu_percent(previous: CpuPoint, current: CpuPoint, cores: float) -> float:
    """Share of the container's CPU limit used between two points, 0-100."""
    elapsed = current.at_ns - previous.at_ns
    used = current.cpu_ns - previous.cpu_ns
    if elapsed <= 0 or used <= 0 or cores <= 0:
        return 0.0
    return min(100.0, 100.0 * used / (elapsed * cores))


def build_sample(
    counters: Counters, cpu_usage_percent: float, cores: float, host_memory: int, timestamp: str
) -> SampleJson:
    limit = counters.memory_limit or host_memory
    return {
        "cpu": {"usagePercent": round(cpu_usage_percent, 2), "cores": cores},
        "memory": {
            "usageBytes": counters.memory_usage,
            "limitBytes": limit,
            "usagePercent": round(100.0 * counters.memory_usage / limit, 2) if limit else 0.0,
        },
        "network": {
            "rxBytes": counters.rx_bytes,
            "txBytes": counters.tx_bytes,
            "rxPackets": counters.rx_packets,
            "txPackets": counters.tx_packets,
        },
        "io": {"readBytes": counters.read_bytes, "writeBytes": counters.write_bytes},
        "pids": counters.pids,
        "timestamp": timestamp,
    }
