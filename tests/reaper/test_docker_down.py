"""A stuck sandbox is failed only while an orchestrator answers and reaches Docker: while Docker
is down, no orchestrator could act on it anyway, and failing it would only lose it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
from nats.aio.msg import Msg
from sbx_common import db, natsconn, subjects, topology
from sbx_common.status import Verb
from sbx_devstack.processes import ServiceProcess
from sbx_devstack.servers import EmbeddedNats, EmbeddedPostgres, free_port, wait_for_port

from tests.harness import Platform
from tests.reaper.conftest import QUICK_REAPER_ENV, CommandTap
from tests.reaper.seed import seed_sandbox


async def test_stuck_sandboxes_wait_while_the_orchestrator_reports_docker_down(
    platform: Platform, tmp_path: Path
) -> None:
    # NATS and PostgreSQL of its own, and an instance name of its own: no other reaper or
    # orchestrator sees this sandbox, and this reaper touches no other test's containers.
    nats_server = EmbeddedNats(tmp_path / "nats").start()
    postgres = EmbeddedPostgres(tmp_path / "postgres").start()
    reaper: ServiceProcess | None = None
    try:
        await db.migrate(postgres.url)
        nc = await natsconn.connect(nats_server.url, "tests-reaper-docker-down")
        await topology.apply_topology(nc.jetstream())
        docker_status = "down"

        async def orchestrator(msg: Msg) -> None:  # answers as an orchestrator would
            await msg.respond(json.dumps({"docker": docker_status}).encode())

        await nc.subscribe(subjects.RPC_ORCHESTRATOR_HEALTH, cb=orchestrator)
        tap = CommandTap()
        await nc.subscribe(subjects.CMD_ALL, cb=tap.on_msg)
        await nc.flush()

        pg = await asyncpg.connect(postgres.url)
        sandbox = await seed_sandbox(pg, verb="restart", runtime_status="restarting", runtime_age=1000)
        await pg.close()

        port = free_port()
        env = {
            **platform.base_env,
            **QUICK_REAPER_ENV,
            "SBX_NATS_URL": nats_server.url,
            "SBX_DATABASE_URL": postgres.url,
            "SBX_INSTANCE": f"test-{uuid.uuid4().hex[:10]}",
            "SBX_METRICS_PORT": str(port),
        }
        reaper = ServiceProcess("reaper", env, log_file=tmp_path / "reaper.log").start()
        wait_for_port(port, timeout=30)

        def failed() -> list[object]:
            return tap.matching(lambda c: c.sandbox_id == sandbox.id and c.verb == Verb.FAIL)

        await asyncio.sleep(4)  # eight sweeps
        assert failed() == []
        docker_status = "ok"
        seen = await tap.wait(lambda c: c.sandbox_id == sandbox.id and c.verb == Verb.FAIL)
        assert seen.command.reason is not None
        assert seen.command.reason.startswith("stuck: restarting for ")
        await nc.close()
    finally:
        if reaper is not None:
            reaper.stop()
        postgres.stop()
        nats_server.stop()
