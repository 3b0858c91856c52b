"""A sandbox new to the firewall is added by a few rules (`render_addition`) instead of a load of
the whole set: on the real kernel, the chains then hold what a whole load of the same sandboxes
holds, and a sandbox's release and a later whole load leave nothing behind."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sbx_common.network import Egress, NetworkPolicy
from sbx_orchestrator.engine.firewall import Firewall

PROXY = "10.213.0.9/32"  # a port proxy's source: its rules sit at the head of the main chain


def chains_of(firewall: Firewall) -> dict[str, list[str]]:
    """Each of the firewall's chains as the kernel holds it (`iptables -S`), rule by rule."""
    listing = subprocess.run(["iptables", "-w", "5", "-S"], capture_output=True, text=True, check=True)
    found: dict[str, list[str]] = {}
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith(firewall.chains.prefix.rstrip("-")):
            found.setdefault(parts[1], [])
            if parts[0] == "-A":
                found[parts[1]].append(" ".join(parts[2:]))
    return found


@pytest.fixture
async def firewall() -> AsyncIterator[Firewall]:
    fw = Firewall(
        f"additions-{uuid.uuid4().hex[:8]}", iptables="iptables", egress_deny=[], proxy_sources=[PROXY]
    )
    yield fw
    await fw.remove_everything()
    assert chains_of(fw) == {}


@contextlib.contextmanager
def no_whole_load(firewall: Firewall) -> Iterator[None]:
    """Fails the test if the firewall loads its whole set meanwhile."""

    async def refused(*, force: bool = False) -> None:
        raise AssertionError("the whole set was loaded")

    firewall._load = refused  # type: ignore[method-assign]
    try:
        yield
    finally:
        del firewall._load


def comparable(chains: dict[str, list[str]], main: str, input_chain: str) -> dict[str, list[str]]:
    """The same rules, with the sandboxes' own rules in the main and input chains in a set order
    (between the fixed head and the final DROP, their order means nothing: each matches its
    own address)."""
    out = dict(chains)
    for name, head in ((main, 3), (input_chain, 1)):
        rules = chains[name]
        out[name] = [*rules[:head], *sorted(rules[head:-1]), rules[-1]]
    return out


async def test_added_sandboxes_hold_the_rules_a_whole_load_holds(firewall: Firewall) -> None:
    policies = [
        NetworkPolicy(),
        NetworkPolicy(Egress.NONE),
        NetworkPolicy(Egress.ALLOWLIST, ("192.0.2.0/24", "198.51.100.7")),
    ]
    first = [(uuid.uuid4(), "10.251.0.2", NetworkPolicy())]
    await firewall.replace_all(first)
    added = [(uuid.uuid4(), f"10.251.0.{10 + i}", policy) for i, policy in enumerate(policies)]
    with no_whole_load(firewall):
        for sandbox_id, address, policy in added:
            await firewall.guard(sandbox_id, address, policy)
    by_addition = chains_of(firewall)
    main, input_chain = firewall.chains.main, firewall.chains.input
    assert by_addition[main][-1] == "-j DROP"
    assert by_addition[input_chain][-1] == "-j DROP"
    for _, address, _ in added:
        assert any(rule.startswith(f"-s {address}/32 -g ") for rule in by_addition[main])

    await firewall.replace_all([*first, *added])
    assert firewall._loaded is not None
    whole = chains_of(firewall)
    assert comparable(by_addition, main, input_chain) == comparable(whole, main, input_chain)

    # A release takes the sandbox's jump, rules and chain away by a few rules too.
    gone_id, gone_address, _ = added[0]
    with no_whole_load(firewall):
        await firewall.guard(uuid.uuid4(), "10.251.0.40", NetworkPolicy())
        await firewall.release(gone_id)
    after = chains_of(firewall)
    assert firewall.chains.of(gone_id) not in after
    assert not any(gone_address in rule for rules in after.values() for rule in rules)
    assert any(rule.startswith("-s 10.251.0.40/32 -g ") for rule in after[main])
    # Guarded again (a restart), it is added again.
    await firewall.guard(gone_id, gone_address, NetworkPolicy())
    assert chains_of(firewall)[firewall.chains.of(gone_id)] != []


async def test_an_addition_iptables_refuses_falls_back_to_a_whole_load(firewall: Firewall) -> None:
    await firewall.replace_all([])
    # The kernel no longer holds what the firewall loaded (someone flushed its main chain): the
    # addition's insert position is past the chain's end, and the whole set is loaded instead.
    subprocess.run(["iptables", "-w", "5", "-F", firewall.chains.main], check=True)
    sandbox_id = uuid.uuid4()
    await firewall.guard(sandbox_id, "10.251.1.2", NetworkPolicy())
    rules = chains_of(firewall)[firewall.chains.main]
    assert "-s 10.251.1.2/32 -g " + firewall.chains.of(sandbox_id) in rules
    assert rules[-1] == "-j DROP"
    assert firewall._loaded is not None


async def test_guarding_again_as_loaded_changes_nothing(firewall: Firewall) -> None:
    """A warm pool's container is guarded with its sandbox's policy before its claim: guarding
    it again at the claim, as it is, runs no iptables at all."""
    await firewall.replace_all([])
    sandbox_id = uuid.uuid4()
    await firewall.guard(sandbox_id, "10.251.2.2", NetworkPolicy())
    before = chains_of(firewall)
    firewall.iptables = "/nonexistent/iptables"  # any run would fail now
    await firewall.guard(sandbox_id, "10.251.2.2", NetworkPolicy())
    await firewall.release(uuid.uuid4())  # never guarded: nothing to take away
    firewall.iptables = "iptables"
    assert chains_of(firewall) == before


async def test_a_rebuild_from_an_older_listing_keeps_the_changes_made_since(firewall: Firewall) -> None:
    """The periodic rebuild lists the running containers, then loads: a sandbox destroyed after
    the listing must not get its rules back, one started after it must not lose them, and an
    address handed on meanwhile belongs to its new sandbox."""
    gone, kept, started, successor = (uuid.uuid4() for _ in range(4))
    policy = NetworkPolicy()
    await firewall.replace_all([(gone, "10.251.1.2", policy), (kept, "10.251.1.3", policy)])
    since = firewall.mark()
    listing = [(gone, "10.251.1.2", policy), (kept, "10.251.1.3", policy)]
    await firewall.release(gone)
    await firewall.guard(started, "10.251.1.4", policy)
    await firewall.guard(successor, "10.251.1.2", NetworkPolicy(Egress.NONE))
    await firewall.replace_all(listing, since)

    chains = chains_of(firewall)
    main = chains[firewall.chains.main]
    assert firewall.chains.of(gone) not in chains
    assert f"-s 10.251.1.2/32 -g {firewall.chains.of(successor)}" in main
    assert f"-s 10.251.1.3/32 -g {firewall.chains.of(kept)}" in main
    assert f"-s 10.251.1.4/32 -g {firewall.chains.of(started)}" in main
    assert chains[firewall.chains.of(successor)] == ["-j DROP"]  # its own policy, not the listing's
    assert set(firewall.guarded) == {kept, started, successor}

    # A listing made after those changes is the whole truth again.
    since = firewall.mark()
    await firewall.replace_all([(kept, "10.251.1.3", policy)], since)
    chains = chains_of(firewall)
    assert [rule for rule in chains[firewall.chains.main] if "-g " in rule] == [
        f"-s 10.251.1.3/32 -g {firewall.chains.of(kept)}"
    ]
    assert set(firewall.guarded) == {kept}


@pytest.mark.parametrize("removal_first", [False, True], ids=["guard-first", "removal-first"])
async def test_an_address_handed_on_before_the_old_rules_are_removed_gets_only_its_own(
    firewall: Firewall, removal_first: bool
) -> None:
    """A stop or destroy forgets its sandbox at once and removes its rules afterwards
    (`forget`, then `take_away`). A sandbox given the same address in between must be guarded by
    its own policy alone, whichever of its guard and that removal comes first, and the removal
    must not take the newcomer's rules."""
    old, new = uuid.uuid4(), uuid.uuid4()
    await firewall.replace_all([(old, "10.251.3.2", NetworkPolicy())])
    forgotten = firewall.forget(old)
    assert forgotten is not None
    if removal_first:
        await firewall.take_away(forgotten)
    await firewall.guard(new, "10.251.3.2", NetworkPolicy(Egress.NONE))
    jumps = [rule for rule in chains_of(firewall)[firewall.chains.main] if "-g " in rule]
    # No jump of that address to the old sandbox's chain, even before its removal ran.
    assert jumps == [f"-s 10.251.3.2/32 -g {firewall.chains.of(new)}"]
    if not removal_first:
        await firewall.take_away(forgotten)
    chains = chains_of(firewall)
    assert firewall.chains.of(old) not in chains
    assert [rule for rule in chains[firewall.chains.main] if "-g " in rule] == [
        f"-s 10.251.3.2/32 -g {firewall.chains.of(new)}"
    ]
    assert chains[firewall.chains.of(new)] == ["-j DROP"]
    assert set(firewall.guarded) == {new}


async def test_a_sandbox_guarded_again_before_its_removal_keeps_its_rules(firewall: Firewall) -> None:
    """A stop answered, then a start at once: the sandbox is guarded again (same address, same
    policy) before the stop's removal ran; that removal must leave the new rules in."""
    sandbox_id = uuid.uuid4()
    await firewall.replace_all([(sandbox_id, "10.251.4.2", NetworkPolicy())])
    forgotten = firewall.forget(sandbox_id)
    await firewall.guard(sandbox_id, "10.251.4.2", NetworkPolicy())
    await firewall.take_away(forgotten)
    chains = chains_of(firewall)
    assert f"-s 10.251.4.2/32 -g {firewall.chains.of(sandbox_id)}" in chains[firewall.chains.main]
    assert chains[firewall.chains.of(sandbox_id)] != []
    assert set(firewall.guarded) == {sandbox_id}
