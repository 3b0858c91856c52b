"""The host firewall of the sandboxes: iptables rules in chains the platform owns.

Every sandbox of an installation sits on one bridge network the orchestrator creates
(`sbx-<instance>`, bridge interface `sbx<hash>`, inter-container communication off). Its traffic
meets these chains (`<h>` is a hash of the instance name, and of the host id for hosts other than
`local`, so neither installations nor hosts sharing a kernel ever share a chain or a bridge):

- `DOCKER-USER -i <bridge> -j SBX-<h>` (FORWARD, everything a sandbox sends off its host):
  replies to connections made *to* the sandbox (published ports) return at once; anything to
  another sandbox on the bridge is dropped; each sandbox's source address goes (`-g`) to its own
  chain `SBX-<h>-<sandbox>`; an address the platform does not know (a container whose rules are
  not in yet) is dropped.
- `SBX-<h>-<sandbox>`: `none` drops everything; `internet` lets DNS to the host's resolvers
  through, then `SBX-<h>-DENY`; `allowlist` lets DNS through, then `SBX-<h>-DENY`, then only
  the listed CIDRs and the addresses the listed hostnames resolved to, and drops the rest.
- `SBX-<h>-DENY`: the always-denied ranges (link-local and the metadata address, loopback,
  private ranges where the host, the platform's services and other networks live, ...) and the
  operator's `SBX_EGRESS_DENY`.
- `INPUT -i <bridge> -j SBX-<h>-IN`: a sandbox reaches none of the host's own addresses (the
  bridge's gateway included), except replies to connections the host opened and DNS to a resolver
  that is a host address.
- `DOCKER-USER -o <bridge> -j SBX-<h>-TO` (traffic into the bridge from elsewhere): TCP
  connections from the API's port proxy when it is not on the host (`SBX_PROXY_SOURCES`, e.g. the
  API container's address under compose) are accepted, as `SBX-<h>` accepts the sandboxes'
  replies to them, ahead of Docker's isolation between networks; anything else returns to
  Docker's rules. A sandbox never opens a connection to those sources (its own chain decides).

A packet a sandbox sends in a connection it opened is checked against its policy every time
(only replies to inbound connections skip the checks), so a policy change also cuts connections
that are already open. The whole set of chains is rendered from the state held here and loaded
in one `iptables-restore --noflush` (atomic; declaring a chain flushes it), serialised by a lock;
a sandbox that starts or goes while the kernel holds what was last put in is added or taken
away by a few rules instead (`render_addition`, `render_removal`: an `iptables-restore` whose
commit grows with what it declares, about 4 ms against 20 ms for the whole set of 20 sandboxes
here, and more with more sandboxes), falling back to a whole load when iptables refuses;
jumps into the platform's chains are added only after `-C` finds them missing. Rules that are not
the platform's are never touched. Hostnames are resolved on the host when a policy is applied and
again every `SBX_EGRESS_REFRESH_SECONDS`: what is allowed is the addresses of the DNS answers at
resolution time.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from sbx_common.network import ALWAYS_DENIED, Egress, NetworkPolicy
from sbx_common.subjects import DEFAULT_HOST

logger = logging.getLogger(__name__)

RESOLV_CONF = Path("/etc/resolv.conf")
# Docker's embedded DNS forwards to these when the host only names loopback resolvers.
DOCKER_FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")
RESOLVE_TIMEOUT = 3.0
IPTABLES_TIMEOUT = 20.0


class FirewallError(Exception):
    """iptables refused or failed."""


def instance_hash(instance: str, host_id: str = DEFAULT_HOST) -> str:
    """Names the installation's host-wide objects (bridge, chains). Hosts of one installation may
    share a kernel (several engines on one machine, docs/scale-out.md): each host then has its
    own bridge and chains, or one orchestrator's rebuild would wipe the other's rules. The
    default host keeps the names it always had."""
    key = instance if host_id == DEFAULT_HOST else f"{instance}/{host_id}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def network_name(instance: str) -> str:
    """The Docker network every sandbox of the installation is attached to."""
    return f"sbx-{instance}"


def bridge_name(instance: str, host_id: str = DEFAULT_HOST) -> str:
    """The Linux bridge of that network (interface names have at most 15 characters)."""
    return f"sbx{instance_hash(instance, host_id)}"


def dns_servers(resolv_conf: Path = RESOLV_CONF) -> list[str]:
    """The IPv4 resolvers Docker's embedded DNS forwards a sandbox's queries to."""
    found: list[str] = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback:
                found.append(str(address))
    return found or list(DOCKER_FALLBACK_DNS)


@dataclass(frozen=True)
class Guarded:
    """A running sandbox as the firewall knows it."""

    sandbox_id: uuid.UUID
    address: str  # its IPv4 address on the platform's bridge
    policy: NetworkPolicy
    resolved: tuple[str, ...] = ()  # addresses of the policy's hostnames, /32 each


class Chains:
    """The names of one installation's chains."""

    def __init__(self, instance: str, host_id: str = DEFAULT_HOST) -> None:
        h = instance_hash(instance, host_id)
        self.main = f"SBX-{h}"
        self.input = f"SBX-{h}-IN"
        self.deny = f"SBX-{h}-DENY"
        self.inbound = f"SBX-{h}-TO"
        self.prefix = f"SBX-{h}-"

    def of(self, sandbox_id: uuid.UUID) -> str:
        return f"{self.prefix}{sandbox_id.hex[:12]}"


def render(  # noqa: PLR0917 - each list is its own part of the rules
    chains: Chains,
    bridge: str,
    guarded: list[Guarded],
    deny: list[str],
    resolvers: list[str],
    proxy_sources: tuple[str, ...] = (),
    gone: list[str] | None = None,
) -> tuple[str, list[str]]:
    """The iptables-restore input that rebuilds every chain of the installation, and the names
    of the per-sandbox chains it declares. The chains in `gone` (sandboxes no longer guarded)
    are flushed and deleted in the same transaction, once nothing jumps to them any more: one
    `iptables-restore` per change instead of one plus an `iptables -F` and `-X` per chain."""
    sandbox_chains = [chains.of(g.sandbox_id) for g in guarded]
    removed = [name for name in gone or [] if name not in sandbox_chains]
    lines = ["*filter"]
    names = (chains.main, chains.input, chains.deny, chains.inbound, *sandbox_chains, *removed)
    lines += [f":{name} - [0:0]" for name in names]
    for source in proxy_sources:
        # The port proxy's connections into the bridge, and the sandboxes' replies to them.
        tcp = "-p tcp -m conntrack --ctstate"
        lines.append(f"-A {chains.inbound} -s {source} -o {bridge} {tcp} NEW,ESTABLISHED -j ACCEPT")
        lines.append(f"-A {chains.main} -d {source} {tcp} ESTABLISHED --ctdir REPLY -j ACCEPT")
    reply = "-m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j RETURN"
    lines.append(f"-A {chains.main} {reply}")
    lines.append(f"-A {chains.main} -o {bridge} -j DROP")
    for g, name in zip(guarded, sandbox_chains, strict=True):
        lines.append(f"-A {chains.main} -s {g.address}/32 -g {name}")
    lines.append(f"-A {chains.main} -j DROP")

    for cidr in deny:
        lines.append(f"-A {chains.deny} -d {cidr} -j DROP")

    lines.append(f"-A {chains.input} {reply}")
    for g in guarded:
        if g.policy.egress is not Egress.NONE:
            lines += _dns(chains.input, resolvers, source=g.address)
    lines.append(f"-A {chains.input} -j DROP")

    for g, name in zip(guarded, sandbox_chains, strict=True):
        lines += _sandbox_rules(chains, g, name, resolvers)
    # Declared above (so flushed, and made if it was not there): deletable now that the main
    # chain, rebuilt above, no longer jumps to it.
    lines += [f"-X {name}" for name in removed]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n", sandbox_chains


def render_addition(
    chains: Chains, g: Guarded, resolvers: list[str], proxy_sources: tuple[str, ...] = ()
) -> str:
    """The iptables-restore input that adds one sandbox to chains `render` loaded: its own chain,
    its source's jump in the main chain, and its DNS to the host in the input chain, each
    inserted where `render` puts them (after the fixed rules at the head of the chain, before
    the final DROP; the order among sandboxes does not matter, each matches its own address).
    A few rules instead of the whole set: the kernel's commit grows with what a load declares."""
    name = chains.of(g.sandbox_id)
    head = len(proxy_sources) + 2  # the proxy's replies, then related replies, then `-o` DROP
    lines = ["*filter", f":{name} - [0:0]", *_sandbox_rules(chains, g, name, resolvers)]
    lines.append(f"-I {chains.main} {head + 1} -s {g.address}/32 -g {name}")
    if g.policy.egress is not Egress.NONE:
        lines += [
            rule.replace(f"-A {chains.input} ", f"-I {chains.input} 2 ", 1)
            for rule in _dns(chains.input, resolvers, source=g.address)
        ]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_removal(chains: Chains, g: Guarded, resolvers: list[str]) -> str:
    """`render_addition` undone: the sandbox's jump and DNS rules deleted (by their text), then
    its chain flushed and deleted."""
    name = chains.of(g.sandbox_id)
    lines = ["*filter", f"-D {chains.main} -s {g.address}/32 -g {name}"]
    if g.policy.egress is not Egress.NONE:
        dns = _dns(chains.input, resolvers, source=g.address)
        lines += [rule.replace(f"-A {chains.input} ", f"-D {chains.input} ", 1) for rule in dns]
    lines += [f"-F {name}", f"-X {name}", "COMMIT"]
    return "\n".join(lines) + "\n"


def _sandbox_rules(chains: Chains, g: Guarded, name: str, resolvers: list[str]) -> list[str]:
    """The rules of a sandbox's own chain, from its policy."""
    if g.policy.egress is Egress.NONE:
        return [f"-A {name} -j DROP"]
    lines = [*_dns(name, resolvers), f"-A {name} -j {chains.deny}"]
    if g.policy.egress is Egress.ALLOWLIST:
        lines += [f"-A {name} -d {cidr} -j RETURN" for cidr in dict.fromkeys([*g.policy.cidrs, *g.resolved])]
        lines.append(f"-A {name} -j DROP")
    return lines


def _dns(chain: str, resolvers: list[str], source: str | None = None) -> list[str]:
    match = f"-s {source}/32 " if source else ""
    return [
        f"-A {chain} {match}-d {resolver}/32 -p {proto} --dport 53 -j RETURN"
        for resolver in resolvers
        for proto in ("udp", "tcp")
    ]


async def resolve(hostname: str) -> list[str]:
    """The IPv4 addresses a hostname resolves to on the host now (none if it does not)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(hostname, None, family=socket.AF_INET, type=socket.SOCK_STREAM),
            RESOLVE_TIMEOUT,
        )
    except (OSError, TimeoutError) as exc:
        logger.info("allowlist hostname did not resolve", extra={"hostname": hostname, "error": repr(exc)})
        return []
    return sorted({f"{info[4][0]}/32" for info in infos})


class Firewall:
    """The installation's chains, and the sandboxes they guard (one writer: this object)."""

    def __init__(
        self,
        instance: str,
        *,
        host_id: str = DEFAULT_HOST,
        iptables: str,
        egress_deny: list[str],
        enabled: bool = True,
        proxy_sources: list[str] | None = None,
    ) -> None:
        self.enabled = enabled
        self.proxy_sources = tuple(proxy_sources or ())
        self.iptables = iptables
        self.chains = Chains(instance, host_id)
        self.bridge = bridge_name(instance, host_id)
        self.deny = list(dict.fromkeys([*ALWAYS_DENIED, *egress_deny]))
        self._guarded: dict[uuid.UUID, Guarded] = {}
        self._declared: set[str] = set()
        self._loaded: str | None = None
        self._whole_loaded = False  # a load of the whole set went in: additions have chains to join
        # Each sandbox as the kernel holds it: what the last load, or an addition since, put in.
        self._in_kernel: dict[uuid.UUID, Guarded] = {}
        self._lock = asyncio.Lock()
        # Changes to `_guarded` counted, and how many of them the last finished load covered.
        self._changes = 0
        self._applied = 0
        # Each sandbox guarded or released since the last rebuild, and when (a count of such
        # changes): a rebuild from a listing made before then keeps what the change said.
        self._touches = 0
        self._touched: dict[uuid.UUID, int] = {}

    @property
    def guarded(self) -> dict[uuid.UUID, Guarded]:
        return dict(self._guarded)

    def mark(self) -> int:
        """Where the changes stand now: a rebuild from a listing made after this call passes it
        as `since`, and the changes made after it win over the listing."""
        return self._touches

    def _touch(self, sandbox_id: uuid.UUID) -> None:
        self._touches += 1
        self._touched[sandbox_id] = self._touches

    # --- changes ---

    async def guard(self, sandbox_id: uuid.UUID, address: str, policy: NetworkPolicy) -> None:
        """Apply `policy` to the sandbox at `address` (replacing what it had)."""
        resolved = await self._resolve(policy)
        entry = Guarded(sandbox_id, address, policy, resolved)
        if self._guarded.get(sandbox_id) == entry and self._in_kernel.get(sandbox_id) == entry:
            return  # in the kernel as asked (a warm pool's container at its claim)
        # An address belongs to one sandbox: a stale entry for it (a container gone without
        # notice) must not lend its policy to the new one.
        stale = [g.sandbox_id for g in self._guarded.values() if g.address == address]
        for other in stale:
            del self._guarded[other]
            self._touch(other)
        fresh = not stale and sandbox_id not in self._guarded
        self._guarded[sandbox_id] = entry
        self._touch(sandbox_id)
        if fresh and await self._add(entry):
            return
        await self._sync()

    async def _add(self, entry: Guarded) -> bool:
        """A sandbox new to the chains (a start, the common case) added by a few rules instead of
        a load of the whole set; False when it must go the whole way: no whole load yet, the
        sandbox already loaded or gone meanwhile, its address still another's in the kernel, or
        iptables refused the addition (the chains not as `render` left them)."""
        if not self.enabled:
            return True
        async with self._lock:
            name = self.chains.of(entry.sandbox_id)
            if (
                not self._whole_loaded
                or entry.sandbox_id in self._in_kernel
                or self._guarded.get(entry.sandbox_id) != entry
                # The kernel still jumps this address to a forgotten sandbox's chain (its removal
                # not made yet, `forget`): a whole load replaces that jump, whatever the order.
                or any(g.address == entry.address for g in self._in_kernel.values())
            ):
                return False
            if not await self._change(render_addition(self.chains, entry, dns_servers(), self.proxy_sources)):
                return False
            self._declared.add(name)
            self._in_kernel[entry.sandbox_id] = entry
            return True

    async def release(self, sandbox_id: uuid.UUID) -> None:
        """The sandbox's container no longer runs: its rules go."""
        await self.take_away(self.forget(sandbox_id))

    def forget(self, sandbox_id: uuid.UUID) -> Guarded | None:
        """`release`'s first half, at once: the sandbox is no longer guarded here, so whatever
        comes next (a guard of its address or of the sandbox itself, a rebuild) sees it gone.
        `take_away` of what this returns then changes the kernel."""
        entry = self._guarded.pop(sandbox_id, None)
        self._touch(sandbox_id)
        return entry

    async def take_away(self, entry: Guarded | None) -> None:
        """`release`'s second half: the forgotten sandbox's rules out of the kernel (nothing, if
        it was guarded again meanwhile: `_remove` then loads the set as it is held)."""
        if entry is not None and await self._remove(entry):
            return
        if entry is not None or not self._whole_loaded:
            await self._sync()

    async def _remove(self, entry: Guarded) -> bool:
        """`_add`'s counterpart: the sandbox's jump, DNS rules and chain deleted; False when it
        must go the whole way."""
        if not self.enabled:
            return True
        async with self._lock:
            if (
                not self._whole_loaded
                or self._in_kernel.get(entry.sandbox_id) != entry
                or entry.sandbox_id in self._guarded
            ):
                return False
            if not await self._change(render_removal(self.chains, entry, dns_servers())):
                return False
            del self._in_kernel[entry.sandbox_id]
            self._declared.discard(self.chains.of(entry.sandbox_id))
            return True

    async def _change(self, text: str) -> bool:
        """One addition or removal loaded (the caller holds the lock); False when iptables
        refused it, and the caller goes the whole way."""
        try:
            await self._restore(text)
        except (FirewallError, OSError, TimeoutError) as exc:
            logger.warning("firewall change refused; loading the whole set", extra={"error": repr(exc)[:300]})
            return False
        self._loaded = None  # the kernel no longer holds the last whole load's text
        return True

    async def _restore(self, text: str) -> None:
        await self._run([f"{self.iptables}-restore", "--noflush", "-w", "5"], stdin=text)

    async def _sync(self) -> None:
        """Load the rules as they are now held, and return once a load that began after this
        call's change has finished (so the change is in the kernel). Changes made while a load
        runs are loaded together by the next one: ten sandboxes started at once cost two or
        three `iptables-restore` runs, not ten one after the other."""
        self._changes += 1
        wanted = self._changes
        while self._applied < wanted:
            async with self._lock:
                if self._applied >= wanted:
                    return
                covers = self._changes
                await self._load()
                self._applied = covers

    async def replace_all(
        self, guarded: list[tuple[uuid.UUID, str, NetworkPolicy]], since: int | None = None
    ) -> None:
        """Rebuild from scratch (start-up, Docker back, the periodic refresh), hostnames
        resolved again, and the jumps into the platform's chains checked.

        `guarded` is a listing of what runs, made after `mark()` returned `since`: a sandbox
        guarded or released after that (its start or its end racing the listing) keeps what
        that change said, so a listing a moment old never brings back the rules of a sandbox
        just destroyed, nor drops those of one just started. Without `since`, `guarded` is the
        whole truth."""
        entries = [
            Guarded(sid, address, policy, await self._resolve(policy)) for sid, address, policy in guarded
        ]
        async with self._lock:
            listed = {g.sandbox_id: g for g in entries}
            if since is not None:
                recent = {sid for sid, at in self._touched.items() if at > since}
                kept = {sid: self._guarded[sid] for sid in recent if sid in self._guarded}
                taken = {g.address for g in kept.values()}
                listed = {sid: g for sid, g in listed.items() if sid not in recent and g.address not in taken}
                listed.update(kept)
                self._touched = {sid: self._touched[sid] for sid in recent}
            else:
                self._touched = {}
            self._guarded = listed
            covers = self._changes
            await self._load(force=True)
            self._applied = covers
            await self._ensure_jumps()

    # --- iptables ---

    async def _resolve(self, policy: NetworkPolicy) -> tuple[str, ...]:
        if policy.egress is not Egress.ALLOWLIST or not policy.hostnames:
            return ()
        found = await asyncio.gather(*(resolve(h) for h in policy.hostnames))
        return tuple(sorted({address for addresses in found for address in addresses}))

    async def _load(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        loading = dict(self._guarded)
        guarded = sorted(loading.values(), key=lambda g: g.address)
        # Chains of sandboxes that are gone go in the same load. A rebuild also looks for
        # chains an earlier run of the orchestrator left.
        existing = self._declared | (await self._platform_chains() if force else set())
        fixed = {self.chains.main, self.chains.input, self.chains.deny, self.chains.inbound}
        kept = {self.chains.of(g.sandbox_id) for g in guarded}
        gone = sorted(existing - kept - fixed)
        text, sandbox_chains = render(
            self.chains, self.bridge, guarded, self.deny, dns_servers(), self.proxy_sources, gone
        )
        if text == self._loaded and not force:
            return
        await self._restore(text)
        self._loaded = text
        self._declared = set(sandbox_chains)
        self._whole_loaded = True
        self._in_kernel = loading

    async def _platform_chains(self) -> set[str]:
        listing = await self._iptables("-S", check=False)
        return {
            line.split()[1]
            for line in listing.splitlines()
            if line.startswith("-N ") and line.split()[1].startswith(self.chains.prefix)
        }

    async def _ensure_jumps(self) -> None:
        if not self.enabled:
            return
        await self._ensure("DOCKER-USER", ["-i", self.bridge, "-j", self.chains.main])
        await self._ensure("INPUT", ["-i", self.bridge, "-j", self.chains.input])
        await self._ensure("DOCKER-USER", ["-o", self.bridge, "-j", self.chains.inbound])

    async def _ensure(self, chain: str, rule: list[str]) -> None:
        """Insert the rule at the top of `chain` unless it is there (Docker recreates
        DOCKER-USER when it restarts; the check keeps this idempotent)."""
        if chain == "DOCKER-USER":
            await self._iptables("-N", chain, check=False)  # Docker down: the chain may be gone
        try:
            await self._iptables("-C", chain, *rule)
        except FirewallError:
            await self._iptables("-I", chain, "1", *rule)
            logger.info("firewall jump added", extra={"chain": chain, "target": rule[-1]})

    async def _iptables(self, *args: str, check: bool = True) -> str:
        return await self._run([self.iptables, "-w", "5", *args], check=check)

    async def _run(self, argv: list[str], stdin: str | None = None, check: bool = True) -> str:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), IPTABLES_TIMEOUT
        )
        if check and process.returncode != 0:
            raise FirewallError(
                f"{Path(argv[0]).name} {argv[-1] if stdin is None else ''}: {err.decode()[:300]}"
            )
        return out.decode()

    async def remove_everything(self) -> None:
        """Take the installation's jumps and chains away (used by tests and uninstalls, never on
        a normal stop: running sandboxes must stay guarded while the orchestrator is down)."""
        async with self._lock:
            jumps = (
                ("DOCKER-USER", "-i", self.chains.main),
                ("INPUT", "-i", self.chains.input),
                ("DOCKER-USER", "-o", self.chains.inbound),
            )
            for chain, direction, target in jumps:
                while True:
                    try:
                        await self._iptables("-D", chain, direction, self.bridge, "-j", target)
                    except FirewallError:
                        break
            fixed = {self.chains.main, self.chains.input, self.chains.deny, self.chains.inbound}
            names = await self._platform_chains() | fixed
            for name in names:
                await self._iptables("-F", name, check=False)
            for name in names:
                await self._iptables("-X", name, check=False)
            self._guarded.clear()
            self._loaded = None
            self._whole_loaded = False
            self._in_kernel = {}
