"""Network holders: containers that each hold a network namespace one sandbox's container joins.

Most of a container's create+start is Docker setting up its network: on the development VM
(Docker 20.10) a container on the sandbox network took 310 ms to create and start, one that joins
another container's namespace (`network_mode: container:<id>`) 106 ms (PERFORMANCE.md). So the
orchestrator keeps `SBX_NETWORK_HOLDERS` containers ready on the sandbox network, each running
only `sbx-agent hold` from the agent's image (no shell, no other file), and a cold create's
container joins one. The sandbox has the holder's address, and its firewall rules are those of
that address, as for a container on the network itself.

A holder serves one sandbox for its whole life and is never handed to another. It stays while
the sandbox is stopped (a start needs no new network), and is removed once the sandbox is
destroyed, before the sandbox's rules go. The pool refills in the background, one holder at a
time, and only while no create is under way. A create that finds none ready, a sandbox with
published ports (Docker publishes them on the namespace's owner) and a warm pool's container get
their own network as before.

Holders carry neither the instance label nor a sandbox id: the reaper's and the watchers'
listings are of sandbox containers. The orchestrator sweeps its own (its instance's and host's):
at start-up and every minute, a holder that no container joins, and that is neither ready nor
being handed over, is removed (one whose sandbox was removed while the orchestrator was down, or
the pool of a previous run). See docs/network-holders.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker.errors
from docker.types import LogConfig
from sbx_common import labels

from sbx_orchestrator.agent.pool import AgentPool
from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine.containers import AGENT_MOUNT_POINT, read_address
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.engine.firewall import bridge_name, network_name

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = 60.0
RETRY_DELAY = 5.0
MEMORY = 32 * 1024 * 1024  # the Go runtime of `sbx-agent hold` uses a few MiB


@dataclass(frozen=True)
class Holder:
    id: str
    address: str


def joined_holder(info: dict[str, Any]) -> str | None:
    """The container whose network namespace this one joins (inspect or list output)."""
    mode = str((info.get("HostConfig") or {}).get("NetworkMode") or "")
    kind, _, target = mode.partition(":")
    return target if kind == "container" and target else None


class NetworkHolders:
    """Component (and the lifecycle's source of holders)."""

    def __init__(
        self, settings: OrchestratorSettings, engine: DockerEngine, agents: AgentPool | None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.agents = agents
        self.network = network_name(settings.instance)
        has_agent = agents is not None and agents.binary is not None
        self.size = settings.network_holders if has_agent else 0
        self._ready: deque[Holder] = deque()
        self._lent: set[str] = set()  # taken, their sandbox's container not made yet
        self._of: dict[uuid.UUID, str] = {}  # sandbox id -> its holder's id
        # Whether `_of` knows every holder: made by this process, or found by a sweep since.
        self._learned = False
        self._addresses: dict[str, str] = {}
        self._wake = asyncio.Event()
        # Creates under way: the pool is refilled only once none is, so a refill never takes
        # Docker's time from the create that emptied it (or from a burst of creates).
        self._creating = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sweep_soon = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def filters(self) -> list[str]:
        return [
            f"{labels.PLATFORM}={labels.PLATFORM_VALUE}",
            f"{labels.HOLDER_INSTANCE}={self.settings.instance}",
            f"{labels.HOLDER_HOST}={self.settings.host_id}",
        ]

    # --- the lifecycle's side ---

    @contextlib.contextmanager
    def creating(self) -> Iterator[None]:
        """Around a create (with a holder or not): the pool is refilled once none is under way."""
        self._creating += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._creating -= 1
            if self._creating == 0:
                self._idle.set()
                self._wake.set()

    def take(self) -> Holder | None:
        """A ready holder for a container about to be made, or None (none ready, or holders
        off)."""
        if not self._ready:
            return None
        holder = self._ready.popleft()
        self._lent.add(holder.id)
        return holder

    def give_back(self, holder: Holder) -> None:
        """A holder taken but not used (nothing joined it): ready again. The pool may have been
        refilled meanwhile: one over its size is removed in the background."""
        self._lent.discard(holder.id)
        self._ready.appendleft(holder)
        self._wake.set()

    def joined(self, holder: Holder, sandbox_id: uuid.UUID) -> None:
        """The sandbox's container was made in the holder's namespace."""
        self._lent.discard(holder.id)
        self._of[sandbox_id] = holder.id

    async def discard(self, holder: Holder) -> None:
        """A holder taken for a container that was not made."""
        self._lent.discard(holder.id)
        self._addresses.pop(holder.id, None)
        await self.engine.remove(holder.id)

    async def remove_of(self, sandbox_id: uuid.UUID) -> None:
        """Remove the holder of a sandbox whose container is gone (none: nothing to do). Before
        the first sweep, one made by an earlier run may not be known yet: a sweep is brought
        forward instead."""
        holder_id = self._of.pop(sandbox_id, None)
        if holder_id is None:
            if self.enabled and not self._learned:
                self._sweep_soon = True
                self._wake.set()
            return
        self._addresses.pop(holder_id, None)
        await self.engine.remove(holder_id)

    async def address_of(self, holder_id: str) -> str | None:
        known = self._addresses.get(holder_id)
        if known is not None:
            return known
        info = await self.engine.inspect(holder_id)
        address = read_address(info, self.network) if info is not None else None
        if address is not None:
            self._addresses[holder_id] = address
        return address

    async def revive(self, holder_id: str) -> bool:
        """Start a holder the engine stopped (it went down): the container joining it starts only
        once it runs. Its address may change. False when it no longer exists."""
        self._addresses.pop(holder_id, None)
        try:
            await self.engine.start(holder_id)
        except docker.errors.NotFound:
            return False
        return True

    # --- the component ---

    async def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="network-holders")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        ready, self._ready = list(self._ready), deque()
        await asyncio.gather(*(self.engine.remove(h.id) for h in ready), return_exceptions=True)

    async def _run(self) -> None:
        next_sweep = 0.0
        while True:
            self._wake.clear()
            try:
                if self._sweep_soon or time.monotonic() >= next_sweep:
                    self._sweep_soon = False
                    await self.sweep()
                    next_sweep = time.monotonic() + SWEEP_INTERVAL
                # One at a time: a refill never takes more of Docker than one create does.
                while len(self._ready) < self.size:
                    await self._idle.wait()
                    self._ready.append(await self._make())
                while len(self._ready) > self.size:
                    extra = self._ready.pop()
                    self._addresses.pop(extra.id, None)
                    await self.engine.remove(extra.id)
            except Exception as exc:
                logger.warning("network holders not refilled", extra={"error": repr(exc)[:300]})
                await asyncio.sleep(RETRY_DELAY)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_sweep - time.monotonic()))

    async def _make(self) -> Holder:
        assert self.agents is not None
        binary = await self.agents.volume()
        if binary is None:
            raise RuntimeError("the agent's image is not available")
        await self.engine.ensure_network(
            self.network, bridge_name(self.settings.instance, self.settings.host_id), self.settings.instance
        )
        api = self.engine.api
        host = api.create_host_config(
            network_mode=self.network,
            # The firewall speaks IPv4: IPv6 is off in the namespace the sandbox will join.
            sysctls={"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            pids_limit=32,
            mem_limit=MEMORY,
            memswap_limit=MEMORY,
            log_config=LogConfig(type="none"),
        )
        created = await self.engine.call(
            "holder_create",
            api.create_container,
            binary.image,
            command=[f"{AGENT_MOUNT_POINT}/sbx-agent", "hold"],
            name=f"sbx-holder-{uuid.uuid4().hex[:12]}",
            labels={
                labels.PLATFORM: labels.PLATFORM_VALUE,
                labels.HOLDER_INSTANCE: self.settings.instance,
                labels.HOLDER_HOST: self.settings.host_id,
            },
            host_config=host,
            detach=True,
        )
        holder_id = str(created["Id"])
        address: str | None = None
        try:
            await self.engine.start(holder_id)
            info = await self.engine.inspect(holder_id)
            address = read_address(info, self.network) if info is not None else None
        finally:
            if address is None:
                with contextlib.suppress(Exception):
                    await self.engine.remove(holder_id)
        if address is None:
            raise RuntimeError("the network holder has no address")
        self._addresses[holder_id] = address
        return Holder(holder_id, address)

    async def listing(self) -> list[dict[str, Any]]:
        """This host's holders of this instance (Docker's list output)."""
        found: list[dict[str, Any]] = await self.engine.call(
            "holders", self.engine.api.containers, all=True, filters={"label": self.filters()}
        )
        return found

    async def sweep(self) -> None:
        """Learn which sandbox each holder serves, and remove those that serve none."""
        known = dict(self._of)  # before the listings: a holder joined since is not in them
        holders = await self.listing()
        if not holders:
            self._learned = True
            return
        sandboxes = await self.engine.instance_containers(self.settings.instance)
        joined: set[str] = set()
        for container in sandboxes:
            target = joined_holder(container)
            if target is None:
                continue
            joined.add(target)
            sandbox_id = (container.get("Labels") or {}).get(labels.SANDBOX_ID)
            with contextlib.suppress(ValueError, TypeError):
                self._of.setdefault(uuid.UUID(str(sandbox_id)), target)
        # A sandbox's container removed outside the platform: its holder serves no one.
        for sandbox_id, holder_id in known.items():
            if holder_id not in joined and self._of.get(sandbox_id) == holder_id:
                del self._of[sandbox_id]
        # Those handed over while the listings were taken are in `_of` or `_lent` by now.
        keep = joined | self._lent | set(self._of.values()) | {h.id for h in self._ready}
        for holder in holders:
            holder_id = str(holder["Id"])
            if holder_id in keep:
                continue
            self._addresses.pop(holder_id, None)
            with contextlib.suppress(docker.errors.APIError):
                await self.engine.remove(holder_id)
                logger.info("network holder no sandbox uses removed", extra={"holderId": holder_id[:12]})
        # Entries whose holder is gone (removed outside the platform) are forgotten.
        present = {str(h["Id"]) for h in holders}
        for sandbox_id, holder_id in list(self._of.items()):
            if holder_id not in present and holder_id not in self._lent:
                del self._of[sandbox_id]
        self._learned = True
