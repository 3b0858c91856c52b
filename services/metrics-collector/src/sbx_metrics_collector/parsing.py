"""Parsers of the kernel's counter files; small and allocation-light, they run for every
sandbox every round."""

from __future__ import annotations

# cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value.
UNLIMITED_V1 = 1 << 62


def int_value(data: bytes) -> int:
    return int(data)


def memory_limit(data: bytes) -> int:
    """memory.limit_in_bytes (v1) or memory.max (v2, "max" when unlimited); 0 means none."""
    text = data.strip()
    if text == b"max":
        return 0
    value = int(text)
    return 0 if value >= UNLIMITED_V1 else value


def stat_value(data: bytes, key: bytes) -> int:
    """The value of `key` in a flat "key value" file (memory.stat, cpu.stat); 0 if absent."""
    if data.startswith(key + b" "):
        start = len(key) + 1
    else:
        found = data.find(b"\n" + key + b" ")
        if found < 0:
            return 0
        start = found + len(key) + 2
    end = data.find(b"\n", start)
    return int(data[start:] if end < 0 else data[start:end])


def blkio_v1(data: bytes) -> tuple[int, int]:
    """(read, write) bytes from blkio.throttle.io_service_bytes: "<dev> Read <n>" lines."""
    read = write = 0
    for line in data.split(b"\n"):
        parts = line.split()
        if len(parts) == 3:
            if parts[1] == b"Read":
                read += int(parts[2])
            elif parts[1] == b"Write":
                write += int(parts[2])
    return read, write


def io_stat_v2(data: bytes) -> tuple[int, int]:
    """(read, write) bytes from io.stat: "<dev> rbytes=<n> wbytes=<n> ..." lines."""
    read = write = 0
    for field in data.split():
        if field.startswith(b"rbytes="):
            read += int(field[7:])
        elif field.startswith(b"wbytes="):
            write += int(field[7:])
    return read, write


def net_dev(data: bytes) -> tuple[int, int, int, int]:
    """(rx bytes, tx bytes, rx packets, tx packets) over every interface but loopback."""
    rx_bytes = tx_bytes = rx_packets = tx_packets = 0
    for line in data.split(b"\n")[2:]:
        name, sep, rest = line.partition(b":")
        if not sep or name.strip() == b"lo":
            continue
        fields = rest.split()
        rx_bytes += int(fields[0])
        rx_packets += int(fields[1])
        tx_bytes += int(fields[8])
        tx_packets += int(fields[9])
    return rx_bytes, tx_bytes, rx_packets, tx_packets
