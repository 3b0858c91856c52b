"""Fixtures of the API tests: API processes of their own, for limits and failure modes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sbx_devstack.servers import EmbeddedNats

from tests.support.nats_auth import nats_server
from tests.support.platform import Platform, apply_topology, start_api

AUTH_LIMIT = 3
PER_MINUTE_LIMIT = 5


@pytest.fixture(scope="session")
def limited_api(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A second API process on the same database and NATS, with low rate limits.

    The shared platform raises the limits (every test signs up from 127.0.0.1). Tests on this
    one tell apart their callers with `X-Forwarded-For`, believed from 127.0.0.1 here only.
    """
    api = start_api(
        platform.base_env,
        tmp_path_factory.mktemp("limited-api-logs"),
        SBX_TRUSTED_PROXIES="127.0.0.1",
        SBX_AUTH_RATE_LIMIT=str(AUTH_LIMIT),
        SBX_RATE_LIMIT_PER_MINUTE=str(PER_MINUTE_LIMIT),
    )
    yield api
    api.stop_all()


@pytest.fixture
async def limited_client(limited_api: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with limited_api.client(timeout=30) as http:
        yield http


@pytest.fixture
async def lone_api(platform: Platform, tmp_path: Path) -> AsyncIterator[tuple[Platform, EmbeddedNats]]:
    """An API process with a NATS server of its own, where no orchestrator answers."""
    nats = nats_server(tmp_path / "nats").start()
    await apply_topology(nats.url)
    api = start_api(platform.base_env, tmp_path / "logs", SBX_NATS_URL=nats.url)
    yield api, nats
    api.stop_all()
    nats.stop()
