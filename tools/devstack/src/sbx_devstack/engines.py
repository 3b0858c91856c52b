"""Extra Docker engines side by side on one machine, one per simulated host (docs/scale-out.md).

Each engine has its own data root, exec root (where it runs its own containerd), pidfile, unix
socket, configuration file (the `runsc` runtime registered as `infra/docker/register-runsc.sh`
does, when gVisor is installed; an address pool of its own for the networks it makes) and
default bridge: a Linux bridge made first with an address in 172.16.0.0/12 that no interface
or route of the machine uses. Images move in with `docker save | docker load`. `stop()` takes
everything down again: containers, the engine (and its containerd), the bridge, the folders.

Root only (dockerd, `ip link`). Used by the multi-host tests (`tests/scaleout/`) and by
`sbx-dev --hosts N`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Where the bridges' /24s are taken from: inside 172.16.0.0/12 but outside the pools Docker hands
# networks out of by default (172.17-172.31/16, 192.168/16), so the machine's own engine never
# gives one of them to a network later. Each engine's own networks come from 10.<200+n>/16.
BRIDGE_RANGE = ipaddress.IPv4Network("172.16.0.0/16")
POOL_BASE = "10.{n}.0.0/16"  # n = 200 + the engine's number: the networks each engine makes
START_TIMEOUT = 60.0
IPTABLES_TABLES = ("filter", "nat")


class EngineError(RuntimeError):
    pass


def _run(
    *args: str, check: bool = True, input_data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(list(args), capture_output=True, input=input_data, check=False)
    if check and result.returncode != 0:
        raise EngineError(f"{' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the machine has an address or a route in."""
    found: list[ipaddress.IPv4Network] = []
    for line in _run("ip", "-4", "route", "show", "table", "all", check=False).stdout.decode().splitlines():
        first = line.split()[0] if line.split() else ""
        if first == "local" and len(line.split()) > 1:
            first = line.split()[1]
        with contextlib.suppress(ValueError):
            found.append(ipaddress.ip_network(first, strict=False))  # type: ignore[arg-type]
    return [n for n in found if isinstance(n, ipaddress.IPv4Network) and n.prefixlen > 0]


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of BRIDGE_RANGE no address or route of the machine overlaps."""
    used = _used_networks()
    for subnet in BRIDGE_RANGE.subnets(new_prefix=24):
        if not any(subnet.overlaps(n) for n in used):
            return subnet
    raise EngineError(f"no free /24 left in {BRIDGE_RANGE}")


def remove_iptables_rules(words: set[str]) -> int:
    """Delete every iptables rule (tables filter and nat) that names one of `words` (interfaces,
    subnets): what an engine added for its bridges and does not take away when it stops."""
    removed = 0
    for table in IPTABLES_TABLES:
        listing = _run("iptables", "-w", "5", "-t", table, "-S", check=False).stdout.decode().splitlines()
        for rule in listing:
            parts = rule.split()
            deleted = parts[:1] == ["-A"] and bool(words & set(parts))
            if (
                deleted
                and _run("iptables", "-w", "5", "-t", table, "-D", *parts[1:], check=False).returncode == 0
            ):
                removed += 1
    return removed


def runsc_runtime() -> dict[str, object] | None:
    """gVisor as `register-runsc.sh` registers it, if installed."""
    runsc = shutil.which("runsc")
    if runsc is None:
        return None
    return {"path": runsc, "runtimeArgs": ["--platform=ptrace", "--network=host"]}


@dataclass
class DockerEngine:
    """One extra dockerd (number `n`, 1 and up), its folders under a short root (unix socket
    paths are limited to 108 bytes)."""

    n: int
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sbxe", dir="/tmp")))
    bridge: str = ""
    subnet: ipaddress.IPv4Network | None = None
    process: subprocess.Popen[bytes] | None = None
    # Interfaces and subnets of its own whose iptables rules are removed at the end.
    _traces: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.bridge = self.bridge or f"sbxeng{os.getpid() % 10000}x{self.n}"[:15]

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        """What `DOCKER_HOST` (and `SBX_DOCKER_HOST`) say to reach this engine."""
        return f"unix://{self.socket}"

    def docker(
        self, *args: str, check: bool = True, input_data: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return _run("docker", "-H", self.docker_host, *args, check=check, input_data=input_data)

    def start(self) -> DockerEngine:
        """Start the engine, or start it again after `kill()` (the crashed engine's containerd,
        which would hold its state, goes first; its containers are cleaned up by dockerd)."""
        stale = []
        for pid in self._leftover_processes():
            with contextlib.suppress(OSError):
                if b"containerd-shim" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
                    stale.append(pid)
        deadline = time.monotonic() + 10
        while stale and time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in stale):
            time.sleep(0.1)
        (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        if self.subnet is None:
            self.subnet = free_subnet()
            gateway = next(self.subnet.hosts())
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
        config: dict[str, object] = {
            "default-address-pools": [{"base": POOL_BASE.format(n=200 + self.n), "size": 24}],
            # Not only what a real host's engine is often given: dockerd 20.10, started again
            # with address pools set and live restore off, deletes the interface `docker0` by
            # name (removeDefaultBridgeInterface), which is the machine's own engine's bridge.
            "live-restore": True,
        }
        runsc = runsc_runtime()
        if runsc is not None:
            config["runtimes"] = {"runsc": runsc}
        (self.root / "daemon.json").write_text(json.dumps(config))
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "-p",
                str(self.root / "dockerd.pid"),
                "-H",
                self.docker_host,
                "--config-file",
                str(self.root / "daemon.json"),
                "--bridge",
                self.bridge,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineError(f"dockerd {self.n} exited; see {self.root / 'dockerd.log'}")
            if self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise EngineError(f"dockerd {self.n} did not answer within {START_TIMEOUT}s")

    def load_image(self, image: str) -> None:
        """Copy an image of the machine's own engine into this one."""
        saved = _run("docker", "save", image).stdout
        self.docker("load", input_data=saved)

    def kill(self) -> None:
        """SIGKILL dockerd (a host's engine dying); its containerd and containers are left as a
        crashed engine leaves them, until `start()` again (which cleans them up) or `stop()`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def _remember_network(self, network: str) -> None:
        """A network's bridge and subnets, whose iptables rules go once the engine is down."""
        found = self.docker("network", "inspect", network, check=False).stdout
        with contextlib.suppress(ValueError, IndexError, KeyError, TypeError):
            info = json.loads(found)[0]
            self._traces.add(info["Options"].get("com.docker.network.bridge.name") or f"br-{info['Id'][:12]}")
            self._traces |= {
                c["Subnet"] for c in (info.get("IPAM") or {}).get("Config") or [] if "Subnet" in c
            }

    def _leftover_processes(self) -> list[int]:
        """Processes of this engine still running (its containerd and shims name its root)."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if str(self.root).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
        return found

    def _container_processes(self, container_ids: list[str]) -> list[int]:
        """The processes of the given containers, from their cgroups."""
        found: list[int] = []
        for container_id in container_ids:
            for procs in Path("/sys/fs/cgroup").glob(f"**/*{container_id}*/cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    found += [int(p) for p in procs.read_text().split()]
        return found

    def _kill_leftovers(self) -> None:
        """What a crashed engine that could not be started again left running: its containers'
        processes, shims and containerd, by pid."""
        shims = self._leftover_processes()
        ids = []
        for pid in shims:
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"-id" in args:
                    ids.append(args[args.index(b"-id") + 1].decode())
        for pid in [*self._container_processes(ids), *shims]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Everything down: the engine's containers, the engine, the bridge, the folders."""
        if self.process is not None and self.process.poll() is not None and self.subnet is not None:
            # Killed: started once more so that it removes what its crash left behind.
            with contextlib.suppress(EngineError):
                self.start()
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.decode().split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False)
            # Networks made on it (their bridges would outlive the engine otherwise).
            networks = (
                self.docker("network", "ls", "--filter", "type=custom", "-q", check=False)
                .stdout.decode()
                .split()
            )
            for network in networks:
                self._remember_network(network)
            if networks:
                self.docker("network", "rm", *networks, check=False)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._kill_leftovers()
        if self.subnet is not None:
            _run("ip", "link", "delete", self.bridge, check=False)
            self._traces |= {self.bridge, str(self.subnet)}
            self.subnet = None
        remove_iptables_rules(self._traces)
        # Anything the engine left mounted under its root goes before the folders do.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root))), reverse=True):
            _run("umount", "-l", mount, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
