"""TTL: a sandbox past its `expires_at` gets one destroy command with reason "ttl" within 2 s."""

from __future__ import annotations

import asyncpg
from sbx_common.status import Verb
from sbx_reaper.command_publisher import ttl_command_id

from tests.reaper.reapers import QuickReaper
from tests.support.commands import CommandTap
from tests.support.rows import seed_sandbox


async def test_expired_sandbox_gets_one_ttl_destroy_within_two_seconds(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    # Armed by the sweep of both reapers; expires 3 s from now.
    sandbox = await seed_sandbox(pg, runtime_status="running", expires_in=3)
    expires_at = await pg.fetchval(
        "SELECT extract(epoch FROM expires_at)::float8 FROM sandboxes WHERE id = $1", sandbox.id
    )
    expiry = await pg.fetchval("SELECT expires_at FROM sandboxes WHERE id = $1", sandbox.id)

    def is_ttl_destroy(command: object) -> bool:
        return (
            getattr(command, "sandbox_id", None) == sandbox.id
            and getattr(command, "verb", None) == Verb.DESTROY
        )

    seen = await command_tap.wait(is_ttl_destroy, timeout=10)
    assert seen.command.reason == "ttl"
    assert seen.at >= expires_at - 0.05
    assert seen.at - expires_at < 2.0
    # Both reapers may publish (each at the expiry); every copy carries the same id, so the
    # stream keeps one. What either sent by the time of later sweeps has reached the tap.
    await quick_reaper.swept(2)
    await command_tap.settle()
    copies = command_tap.matching(is_ttl_destroy)
    assert {c.command.id for c in copies} == {ttl_command_id(sandbox.id, expiry)}
    assert {c.msg_id for c in copies} == {str(ttl_command_id(sandbox.id, expiry))}


async def test_sandbox_expired_while_no_reaper_ran_is_caught_by_the_sweep(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    sandbox = await seed_sandbox(pg, runtime_status="running", expires_in=-600)
    seen = await command_tap.wait(lambda c: c.sandbox_id == sandbox.id, timeout=10)
    assert seen.command.verb == Verb.DESTROY
    assert seen.command.reason == "ttl"


async def test_ended_or_destroying_sandboxes_are_not_expired(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    ended = await seed_sandbox(pg, verb="destroy", runtime_status="destroyed", expires_in=-600)
    destroying = await seed_sandbox(pg, verb="destroy", runtime_status="destroying", expires_in=-600)
    marker = await seed_sandbox(pg, runtime_status="running", expires_in=-600)
    # Once the marker (seeded last) is expired, a full sweep has seen the other two.
    await command_tap.wait(lambda c: c.sandbox_id == marker.id, timeout=10)
    await quick_reaper.swept()  # and more full sweeps since
    await command_tap.settle()
    assert not command_tap.matching(lambda c: c.sandbox_id in (ended.id, destroying.id))
