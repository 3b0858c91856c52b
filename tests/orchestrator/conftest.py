"""Fixtures of the orchestrator tests: a driver speaking the orchestrator's own contract."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sbx_common import natsconn

from tests.harness import Platform
from tests.orchestrator.support import OrchestratorDriver

HEALTHY_IMAGE = "sbx-test-healthcheck:latest"

# Healthy once /tmp/ready exists; the environment's command decides when that is.
HEALTHCHECK_DOCKERFILE = """
FROM {base}
HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["test", "-f", "/tmp/ready"]
"""


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


@pytest.fixture(scope="session")
def healthcheck_image(test_image: str) -> Iterator[str]:
    """The test image with a HEALTHCHECK (built locally from it: no registry involved)."""
    subprocess.run(
        ["docker", "build", "-q", "-t", HEALTHY_IMAGE, "-"],
        input=HEALTHCHECK_DOCKERFILE.format(base=test_image).encode(),
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    yield HEALTHY_IMAGE
    subprocess.run(["docker", "rmi", "-f", HEALTHY_IMAGE], capture_output=True, check=False)
