"""A stuck sandbox is failed only while an orchestrator answers and reaches Docker: while Docker
is down, no orchestrator could act on it anyway, and failing it would only lose it."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
from nats.aio.msg import Msg
from sbx_common import subjects
from sbx_common.status import Verb

from tests.reaper.conftest import QUICK_REAPER_ENV
from tests.support.commands import Seen, tap_commands
from tests.support.nats_auth import admin_connect
from tests.support.platform import dedicated_platform, metric
from tests.support.rows import seed_sandbox
from tests.support.waiting import wait_for


async def test_stuck_sandboxes_wait_while_the_orchestrator_reports_docker_down(tmp_path: Path) -> None:
    # NATS and PostgreSQL of its own, and an instance name of its own: no other reaper or
    # orchestrator sees this sandbox, and this reaper touches no other test's containers.
    async with dedicated_platform(tmp_path, env=QUICK_REAPER_ENV) as plat:
        nc = await admin_connect(plat.nats_url, "tests-reaper-docker-down")
        try:
            docker_status = "down"

            async def orchestrator(msg: Msg) -> None:  # answers as an orchestrator would
                await msg.respond(json.dumps({"docker": docker_status}).encode())

            await nc.subscribe(subjects.RPC_ORCHESTRATOR_HEALTH, cb=orchestrator)
            async with tap_commands(nc) as tap:
                pg = await asyncpg.connect(plat.database_url)
                sandbox = await seed_sandbox(
                    pg, verb="restart", runtime_status="restarting", runtime_age=1000
                )
                await pg.close()

                plat.platform.start_service("reaper")

                def failed() -> list[Seen]:
                    return tap.matching(lambda c: c.sandbox_id == sandbox.id and c.verb == Verb.FAIL)

                async def eight_sweeps() -> bool:
                    port = plat.platform.ops_ports["reaper"]
                    return (await metric(port, "reaper_sweep_seconds_count") or 0) >= 8

                await wait_for(eight_sweeps, timeout=30, interval=0.2)
                assert failed() == []
                docker_status = "ok"
                seen = await tap.wait(lambda c: c.sandbox_id == sandbox.id and c.verb == Verb.FAIL)
                assert seen.command.reason is not None
                assert seen.command.reason.startswith("stuck: restarting for ")
        finally:
            await nc.close()
