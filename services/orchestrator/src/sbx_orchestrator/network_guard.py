"""Sandbox networks: the platform's bridge network and the firewall rules of each sandbox.

The lifecycle calls `apply` once a sandbox's container runs and `release` once it stops or goes;
the `network` command calls `apply` with the policy recorded now. `resync` rebuilds every rule
from what Docker runs and what the database records: at start-up and whenever the Docker event
stream (re)connects (an engine restart loses DOCKER-USER's jump), and every
`SBX_EGRESS_REFRESH_SECONDS` (allowlist hostnames resolved again; a lost `network` command
caught up).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from sbx_common import labels
from sbx_common.network import NetworkPolicy

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine.containers import read_address
from sbx_orchestrator.engine.docker_engine import DockerEngine
from sbx_orchestrator.engine.firewall import Firewall, Guarded, bridge_name, network_name
from sbx_orchestrator.network_holders import NetworkHolders, joined_holder
from sbx_orchestrator.repository import Repository

if TYPE_CHECKING:
    from sbx_orchestrator.context import OrchestratorContext

logger = logging.getLogger(__name__)


class NetworkGuard:
    def __init__(
        self,
        settings: OrchestratorSettings,
        repository: Repository,
        engine: DockerEngine,
        holders: NetworkHolders | None = None,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.engine = engine
        self.holders = holders
        self.network = network_name(settings.instance)
        self.bridge = bridge_name(settings.instance, settings.host_id)
        self.firewall = Firewall(
            settings.instance,
            host_id=settings.host_id,
            iptables=settings.iptables,
            egress_deny=settings.egress_deny,
            enabled=settings.sandbox_firewall,
            proxy_sources=settings.proxy_sources,
        )
        self._network_ready = False
        self._releasing: set[asyncio.Task[None]] = set()

    async def ensure_network(self) -> None:
        if not self._network_ready:
            await self.engine.ensure_network(self.network, self.bridge, self.settings.instance)
            self._network_ready = True

    async def address_of(self, info: dict[str, Any]) -> str | None:
        """A sandbox container's address on the platform's network (its inspect output): its
        own, or that of the network holder whose namespace it joins."""
        holder_id = joined_holder(info)
        if holder_id is None:
            return read_address(info, self.network)
        if self.holders is None:
            return None
        return await self.holders.address_of(holder_id)

    async def guard_address(self, sandbox_id: uuid.UUID, address: str, policy: NetworkPolicy) -> None:
        """Guard a sandbox by an address known before its container runs (a network holder's)."""
        await self.firewall.guard(sandbox_id, address, policy)

    async def apply(self, sandbox_id: uuid.UUID, info: dict[str, Any], policy: NetworkPolicy) -> str | None:
        """Guard a running container (its inspect output) with `policy`; its address."""
        address = await self.address_of(info)
        if address is None:
            # Not on the platform's network (made before it existed): nothing to match it by.
            logger.warning(
                "sandbox container not on the sandbox network", extra={"sandboxId": str(sandbox_id)}
            )
            return None
        await self.firewall.guard(sandbox_id, address, policy)
        logger.info(
            "network policy applied",
            extra={"sandboxId": str(sandbox_id), "egress": policy.egress.value, "allow": len(policy.allow)},
        )
        return address

    async def release(self, sandbox_id: uuid.UUID) -> None:
        await self.firewall.release(sandbox_id)

    def release_soon(self, sandbox_id: uuid.UUID, first: Awaitable[object] | None = None) -> None:
        """`release` for a caller that must not wait for the kernel (a stop or destroy already
        recorded, whose sandbox lock a next command waits for). The sandbox is forgotten at once,
        so a later guard of it or of its address never races the removal (`Firewall.take_away`);
        only the kernel's change runs in the background, after `first` (a destroyed sandbox's
        network holder removed: the rules last as long as the address is held)."""
        entry = self.firewall.forget(sandbox_id)
        task = asyncio.create_task(self._take_away(sandbox_id, entry, first), name="firewall-release")
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _take_away(
        self, sandbox_id: uuid.UUID, entry: Guarded | None, first: Awaitable[object] | None
    ) -> None:
        try:
            if first is not None:
                try:
                    await first
                except Exception:
                    # A sweep removes the holder later (network_holders.py).
                    logger.exception(
                        "network holder of a destroyed sandbox not removed",
                        extra={"sandboxId": str(sandbox_id)},
                    )
            await self.firewall.take_away(entry)
        except Exception:
            # The container no longer runs; the periodic rebuild takes its rules away.
            logger.exception(
                "rules of a sandbox that ended not removed", extra={"sandboxId": str(sandbox_id)}
            )

    async def drain(self) -> None:
        """Wait for the removals `release_soon` started (at shutdown)."""
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    async def resync(self) -> None:
        """Every running sandbox container of this instance, guarded by its recorded policy."""
        self._network_ready = False
        await self.ensure_network()
        # Starts and ends from here on race the listing: theirs are the newer word.
        since = self.firewall.mark()
        containers = await self.engine.instance_containers(self.settings.instance)
        # The addresses of network holders, for the containers that join one.
        held: dict[str, str | None] = {}
        if self.holders is not None and any(joined_holder(c) for c in containers):
            held = {str(h["Id"]): read_address(h, self.network) for h in await self.holders.listing()}
        running: dict[uuid.UUID, str] = {}
        for container in containers:
            sandbox_id = (container.get("Labels") or {}).get(labels.SANDBOX_ID)
            holder_id = joined_holder(container)
            address = held.get(holder_id) if holder_id else read_address(container, self.network)
            if container.get("State") == "running" and sandbox_id and address:
                running[uuid.UUID(sandbox_id)] = str(address)
        policies = await self.repository.network_policies(list(running))
        # A container without a sandbox row (an orphan the reaper will remove) gets no rules:
        # the platform's chain drops whatever comes from an address it does not know.
        await self.firewall.replace_all(
            [(sid, address, policies[sid]) for sid, address in running.items() if sid in policies], since
        )


class NetworkRefresher:
    """Component: rebuild the rules every `SBX_EGRESS_REFRESH_SECONDS`."""

    def __init__(self, context: OrchestratorContext) -> None:
        self.guard = context.guard
        self.interval = context.settings.egress_refresh_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="network-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.guard.resync()
            except Exception as exc:
                logger.warning("network rules not refreshed", extra={"error": repr(exc)[:300]})
