"""Raw, cumulative resource counters of one container at one instant, whatever their source."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Counters:
    cpu_ns: int  # CPU time used since the container started
    memory_usage: int  # bytes, without the reclaimable inactive page cache (as `docker stats`)
    memory_limit: int  # bytes; 0 when unlimited
    read_bytes: int
    write_bytes: int
    pids: int
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


class ContainerGone(Exception):
    """The container's files disappeared or became unreadable: it stopped or restarted."""
