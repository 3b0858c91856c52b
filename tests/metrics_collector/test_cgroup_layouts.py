"""The fast path on every cgroup layout Docker uses, including those this machine does not run
(cgroup v2 with the systemd or the cgroupfs driver): a hierarchy written into a temporary folder
with the kernel's file formats, read by the collector's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from sbx_metrics_collector.cgroups import CgroupReader, CgroupUnavailable
from sbx_metrics_collector.counters import Counters

CONTAINER = "4f" * 32
PID = 4242
NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls"
    " carrier compressed\n"
    "    lo:     999      9    0    0    0     0          0         0      999       9    0    0    0     0"
    "       0          0\n"
    "  eth0:1234567     30    0    0    0     0          0         0     4321      12    0    0    0     0"
    "       0          0\n"
)
EXPECTED = Counters(
    cpu_ns=1_500_000_000,
    memory_usage=10_000_000 - 2_000_000,
    memory_limit=64 * 1024 * 1024,
    read_bytes=4096 + 100,
    write_bytes=8192,
    pids=3,
    rx_bytes=1234567,
    tx_bytes=4321,
    rx_packets=30,
    tx_packets=12,
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_tree(proc: Path, cgroup_lines: str) -> None:
    write(proc / str(PID) / "cgroup", cgroup_lines)
    write(proc / str(PID) / "net" / "dev", NET_DEV)


def v2_files(folder: Path, memory_max: str = str(64 * 1024 * 1024)) -> None:
    write(folder / "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    write(folder / "memory.current", "10000000\n")
    write(folder / "memory.max", f"{memory_max}\n")
    write(folder / "memory.stat", "anon 100\nfile 2500000\nkernel 0\ninactive_file 2000000\nactive_file 5\n")
    write(
        folder / "io.stat",
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=100 wbytes=0\n",
    )
    write(folder / "pids.current", "3\n")


@pytest.mark.parametrize(
    ("folder", "proc_line"),
    [
        (f"system.slice/docker-{CONTAINER}.scope", f"0::/system.slice/docker-{CONTAINER}.scope\n"),
        (f"docker/{CONTAINER}", f"0::/docker/{CONTAINER}\n"),
        # A collector in its own cgroup namespace sees "/" in /proc: the known layouts still work.
        (f"system.slice/docker-{CONTAINER}.scope", "0::/\n"),
    ],
)
def test_cgroup_v2_layouts(tmp_path: Path, folder: str, proc_line: str) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    v2_files(root / folder)
    proc_tree(proc, proc_line)
    reader = CgroupReader(root, proc, CONTAINER, PID)
    try:
        assert reader.read() == EXPECTED
    finally:
        reader.close()


def test_cgroup_v2_without_memory_limit(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    write(root / "cgroup.controllers", "cpu io memory pids\n")
    v2_files(root / "docker" / CONTAINER, memory_max="max")
    proc_tree(proc, f"0::/docker/{CONTAINER}\n")
    reader = CgroupReader(root, proc, CONTAINER, PID)
    try:
        assert reader.read().memory_limit == 0  # shown as the host's memory in the sample
    finally:
        reader.close()


def test_cgroup_v1_layout(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    base = f"docker/{CONTAINER}"
    write(root / "cpuacct" / base / "cpuacct.usage", "1500000000\n")
    write(root / "memory" / base / "memory.usage_in_bytes", "10000000\n")
    write(root / "memory" / base / "memory.limit_in_bytes", f"{64 * 1024 * 1024}\n")
    write(root / "memory" / base / "memory.stat", "cache 2000000\nrss 100\ntotal_inactive_file 2000000\n")
    write(
        root / "blkio" / base / "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n259:0 Read 100\nTotal 12388\n",
    )
    write(root / "pids" / base / "pids.current", "3\n")
    proc_tree(
        proc, "".join(f"{i}:{c}:/{base}\n" for i, c in enumerate(["pids", "blkio", "memory", "cpu,cpuacct"]))
    )
    reader = CgroupReader(root, proc, CONTAINER, PID)
    try:
        assert reader.read() == EXPECTED
    finally:
        reader.close()


def test_missing_cgroup_means_fallback(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    write(root / "cgroup.controllers", "cpu memory\n")
    proc_tree(proc, "0::/elsewhere\n")
    with pytest.raises(CgroupUnavailable):
        CgroupReader(root, proc, CONTAINER, PID)
