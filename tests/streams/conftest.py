"""Fixtures of the streams tests: sandboxes running a script, and a platform of its own for the
modules that break things."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.platform import DedicatedPlatform, dedicated_platform
from tests.support.sandboxes import Sandboxes


@pytest.fixture(scope="module", name="dedicated_platform")
async def dedicated_platform_of_the_module(
    request: pytest.FixtureRequest, test_image: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DedicatedPlatform]:
    """Own NATS and PostgreSQL, an instance name of its own, and the services the module lists
    in its `DEDICATED_SERVICES` (default: all but the reaper and metrics collector), with its
    `DEDICATED_ENV` over the usual settings."""
    async with dedicated_platform(
        tmp_path_factory.mktemp("dedicated"),
        services=getattr(request.module, "DEDICATED_SERVICES", ("orchestrator", "log-shipper", "api")),
        env=getattr(request.module, "DEDICATED_ENV", {}),
    ) as plat:
        yield plat


@pytest.fixture
async def sandboxes(client: httpx.AsyncClient, test_image: str) -> AsyncIterator[Sandboxes]:
    made = Sandboxes(client, test_image)
    yield made
    await made.destroy_all()
