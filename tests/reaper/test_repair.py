"""Repair: commands never taken up are published again with the same id; stuck sandboxes get
their command again, then a `fail` command with the reason."""

from __future__ import annotations

import json
import time

import asyncpg
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sbx_common import subjects
from sbx_common.status import Verb
from sbx_reaper.command_publisher import fail_command_id

from tests.reaper.reapers import QuickReaper
from tests.support.commands import CommandTap
from tests.support.rows import seed_sandbox

UNTAKEN_AFTER = 5.0  # the reaper's default `SBX_REAPER_UNTAKEN_AFTER_SECONDS`, which the tests keep


async def test_command_never_taken_up_is_published_again_with_its_id(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    # The API recorded a create (and crashed before publishing it); the orchestrator never saw it.
    sandbox = await seed_sandbox(pg, verb="create", command_age=10)
    # A stop taken up by the orchestrator long ago has settled: nothing to repair there.
    settled = await seed_sandbox(pg, verb="stop", command_age=600, runtime_status="stopped", runtime_age=600)

    seen = await command_tap.wait(lambda c: c.sandbox_id == sandbox.id)
    assert seen.command.id == sandbox.command_id
    assert seen.msg_id == str(sandbox.command_id)
    assert seen.command.verb == Verb.CREATE
    assert seen.command.owner_id == sandbox.owner_id
    # Sweeps that began after both were seeded republish nothing for the settled one.
    await quick_reaper.swept()
    await command_tap.settle()
    assert not command_tap.matching(lambda c: c.sandbox_id == settled.id)


async def test_fresh_command_is_left_to_the_orchestrator(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    seeded_at = time.time()
    fresh = await seed_sandbox(pg, verb="create", command_age=0, runtime_status="pending", taken_up=False)
    busy = await seed_sandbox(pg, verb="start", runtime_status="starting", runtime_age=5)
    marker = await seed_sandbox(pg, verb="create", command_age=30)
    await command_tap.wait(lambda c: c.sandbox_id == marker.id)
    await command_tap.settle()
    assert not command_tap.matching(lambda c: c.sandbox_id == busy.id)
    # Nothing for the fresh command before its "not taken up" delay ran out (the marker is seen
    # well before that, unless the machine is so busy that the fresh one is then rightly due).
    republished = command_tap.matching(lambda c: c.sandbox_id == fresh.id)
    assert not [s for s in republished if s.at < seeded_at + UNTAKEN_AFTER]


async def test_stuck_sandbox_gets_its_command_again_under_a_new_message_id(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    # Taken up, then stuck in `starting` for 150 s: one stuck timeout (120 s) has passed.
    sandbox = await seed_sandbox(pg, verb="start", runtime_status="starting", runtime_age=150)
    seen = await command_tap.wait(lambda c: c.sandbox_id == sandbox.id)
    assert seen.command.id == sandbox.command_id
    assert seen.command.verb == Verb.START
    assert seen.msg_id == f"{sandbox.command_id}:repair-1"


async def test_sandbox_stuck_past_every_retry_is_failed_with_a_reason(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection, nc: NatsClient
) -> None:
    async def healthy(msg: Msg) -> None:
        await msg.respond(json.dumps({"docker": "ok"}).encode())

    # The fail command is sent only while an orchestrator answers; answer as one would.
    responder = await nc.subscribe(subjects.RPC_ORCHESTRATOR_HEALTH, cb=healthy)
    try:
        sandbox = await seed_sandbox(pg, verb="restart", runtime_status="restarting", runtime_age=1000)
        seen = await command_tap.wait(lambda c: c.sandbox_id == sandbox.id and c.verb == Verb.FAIL)
    finally:
        await responder.unsubscribe()
    assert seen.command.id == fail_command_id(sandbox.command_id)
    assert seen.command.reason is not None
    assert seen.command.reason.startswith("stuck: restarting for ")


async def test_stuck_pause_and_untaken_resume_get_their_commands_again(
    quick_reaper: QuickReaper, command_tap: CommandTap, pg: asyncpg.Connection
) -> None:
    # An orchestrator died while freezing (`pausing` taken up 150 s ago), and a resume the API
    # recorded was never published: each gets its own command again.
    pausing = await seed_sandbox(pg, verb="pause", runtime_status="pausing", runtime_age=150)
    resume = await seed_sandbox(pg, verb="resume", command_age=10, runtime_status="paused", taken_up=False)
    seen = await command_tap.wait(lambda c: c.sandbox_id == pausing.id)
    assert seen.command.verb == Verb.PAUSE
    assert seen.command.id == pausing.command_id
    assert seen.msg_id == f"{pausing.command_id}:repair-1"
    again = await command_tap.wait(lambda c: c.sandbox_id == resume.id)
    assert again.command.verb == Verb.RESUME
    assert again.msg_id == str(resume.command_id)
