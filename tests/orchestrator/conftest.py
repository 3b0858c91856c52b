"""Fixtures of the orchestrator tests: a driver speaking the orchestrator's own contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sbx_common import natsconn

from tests.harness import Platform
from tests.orchestrator.support import OrchestratorDriver


@pytest.fixture
async def driver(
    platform: Platform, pg: asyncpg.Connection, nats_url: str, test_image: str
) -> AsyncIterator[OrchestratorDriver]:
    await pg.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    nc = await natsconn.connect(nats_url, "tests-orchestrator")
    orchestrator = OrchestratorDriver(
        pg=pg, nc=nc, master_key=platform.base_env["SBX_SECRETS_MASTER_KEY"], image=test_image
    )
    yield orchestrator
    orchestrator.cleanup()
    await nc.close()
