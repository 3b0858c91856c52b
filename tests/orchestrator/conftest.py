"""Fixtures of the orchestrator tests: a driver speaking the orchestrator's own contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.aio.client import Client as NatsClient

from tests.orchestrator.driver import OrchestratorDriver
from tests.support.platform import Platform


@pytest.fixture
async def driver(
    platform: Platform, pg: asyncpg.Connection, nc: NatsClient, test_image: str
) -> AsyncIterator[OrchestratorDriver]:
    await pg.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    orchestrator = OrchestratorDriver(
        pg=pg, nc=nc, master_key=platform.base_env["SBX_SECRETS_MASTER_KEY"], image=test_image
    )
    yield orchestrator
    orchestrator.cleanup()
