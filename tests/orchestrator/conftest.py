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

HEALTHCHECK_IMAGE = "sbx-test-healthcheck:latest"
UNHEALTHY_IMAGE = "sbx-test-unhealthy:latest"

# Healthy once /tmp/ready exists (the environment's command decides when); failed checks do not
# count during the first 60 s.
HEALTHCHECK_DOCKERFILE = """
FROM {base}
HEALTHCHECK --interval=1s --timeout=1s --start-period=60s --retries=1 CMD ["test", "-f", "/tmp/ready"]
"""
# Unhealthy at its first check.
UNHEALTHY_DOCKERFILE = """
FROM {base}
HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["false"]
"""


def build_image(tag: str, dockerfile: str) -> str:
    """An image built locally from the test image (no registry involved)."""
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"],
        input=dockerfile.encode(),
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    return tag


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
    yield build_image(HEALTHCHECK_IMAGE, HEALTHCHECK_DOCKERFILE.format(base=test_image))
    subprocess.run(["docker", "rmi", "-f", HEALTHCHECK_IMAGE], capture_output=True, check=False)


@pytest.fixture(scope="session")
def unhealthy_image(test_image: str) -> Iterator[str]:
    yield build_image(UNHEALTHY_IMAGE, UNHEALTHY_DOCKERFILE.format(base=test_image))
    subprocess.run(["docker", "rmi", "-f", UNHEALTHY_IMAGE], capture_output=True, check=False)
