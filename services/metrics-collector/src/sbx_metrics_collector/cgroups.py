"""The fast path: a container's counters read straight from its cgroup files.

Layouts: cgroup v1 has one hierarchy per controller (`<root>/{cpuacct,memory,blkio,pids}/<path>`),
cgroup v2 one unified hierarchy (`<root>/<path>`). `<path>` is taken from `/proc/<pid>/cgroup` when
it names the container, else from the layouts Docker uses: `docker/<id>` (cgroupfs driver) and
`system.slice/docker-<id>.scope` (systemd driver). Network counters come from the container's
network namespace, `/proc/<pid>/net/dev` of its init process.

Each file is opened once per container and re-read with `pread` at offset 0, which makes the
kernel render a fresh value: a few microseconds per file, against about a second per container
for Docker's stats API.
"""

from __future__ import annotations

import os
from pathlib import Path

from sbx_metrics_collector import parsing
from sbx_metrics_collector.counters import ContainerGone, Counters

V1_CONTROLLERS = ("cpuacct", "memory", "blkio", "pids")
READ_SIZE = 64 * 1024


class CgroupUnavailable(Exception):
    """The container's cgroup files cannot be found or opened here (use the fallback)."""


def is_v2(root: Path) -> bool:
    return (root / "cgroup.controllers").exists()


def proc_cgroup_paths(proc_root: Path, pid: int) -> dict[str, str]:
    """Controller -> cgroup path from /proc/<pid>/cgroup; the v2 hierarchy is under key ""."""
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except OSError:
        return {}
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def candidate_paths(container_id: str, from_proc: str | None) -> list[str]:
    candidates = [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]
    if from_proc and container_id in from_proc:
        candidates.insert(0, from_proc.lstrip("/"))
    return candidates


def find_dir(base: Path, candidates: list[str]) -> Path:
    for candidate in candidates:
        path = base / candidate
        if path.is_dir():
            return path
    raise CgroupUnavailable(f"no cgroup directory under {base}")


class CounterFile:
    """One kernel counter file, kept open and re-read from offset 0."""

    __slots__ = ("fd",)

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> bytes:
        try:
            data = os.pread(self.fd, READ_SIZE, 0)
        except OSError as exc:  # ENODEV once the cgroup is removed, ESRCH once the process exits
            raise ContainerGone(str(exc)) from exc
        if not data:
            raise ContainerGone("empty counter file")
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1  # a later read fails (EBADF) instead of reading a reused descriptor


class CgroupReader:
    """The open counter files of one container."""

    def __init__(self, cgroup_root: Path, proc_root: Path, container_id: str, pid: int) -> None:
        self.v2 = is_v2(cgroup_root)
        from_proc = proc_cgroup_paths(proc_root, pid)
        self._files: list[CounterFile] = []
        try:
            if self.v2:
                base = find_dir(cgroup_root, candidate_paths(container_id, from_proc.get("")))
                self._cpu = self._open(base / "cpu.stat")
                self._mem_usage = self._open(base / "memory.current")
                self._mem_limit = self._open(base / "memory.max")
                self._mem_stat = self._open(base / "memory.stat")
                self._io = self._open(base / "io.stat")
                self._pids = self._open(base / "pids.current")
            else:
                dirs = {
                    c: find_dir(cgroup_root / c, candidate_paths(container_id, from_proc.get(c)))
                    for c in V1_CONTROLLERS
                }
                self._cpu = self._open(dirs["cpuacct"] / "cpuacct.usage")
                self._mem_usage = self._open(dirs["memory"] / "memory.usage_in_bytes")
                self._mem_limit = self._open(dirs["memory"] / "memory.limit_in_bytes")
                self._mem_stat = self._open(dirs["memory"] / "memory.stat")
                blkio = dirs["blkio"] / "blkio.throttle.io_service_bytes_recursive"
                if not blkio.exists():
                    blkio = dirs["blkio"] / "blkio.throttle.io_service_bytes"
                self._io = self._open(blkio)
                self._pids = self._open(dirs["pids"] / "pids.current")
            self._net = self._open(proc_root / str(pid) / "net" / "dev")
        except (OSError, CgroupUnavailable) as exc:
            self.close()
            raise CgroupUnavailable(str(exc)) from exc

    def _open(self, path: Path) -> CounterFile:
        counter = CounterFile(path)
        self._files.append(counter)
        return counter

    def read(self) -> Counters:
        try:
            if self.v2:
                cpu_ns = parsing.stat_value(self._cpu.read(), b"usage_usec") * 1000
                inactive = parsing.stat_value(self._mem_stat.read(), b"inactive_file")
                read_bytes, write_bytes = parsing.io_stat_v2(self._io.read())
            else:
                cpu_ns = int(self._cpu.read())
                inactive = parsing.stat_value(self._mem_stat.read(), b"total_inactive_file")
                read_bytes, write_bytes = parsing.blkio_v1(self._io.read())
            usage = int(self._mem_usage.read())
            limit = parsing.memory_limit(self._mem_limit.read())
            pids = int(self._pids.read())
            rx_bytes, tx_bytes, rx_packets, tx_packets = parsing.net_dev(self._net.read())
        except ValueError as exc:
            raise ContainerGone(f"unreadable counter: {exc}") from exc
        return Counters(
            cpu_ns=cpu_ns,
            memory_usage=usage - inactive if inactive < usage else usage,
            memory_limit=limit,
            read_bytes=read_bytes,
            write_bytes=write_bytes,
            pids=pids,
            rx_bytes=rx_bytes,
            tx_bytes=tx_bytes,
            rx_packets=rx_packets,
            tx_packets=tx_packets,
        )

    def close(self) -> None:
        for counter in self._files:
            counter.close()
        self._files.clear()
