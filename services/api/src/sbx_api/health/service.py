"""Dependency checks for `/health` and `/health/ready`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sbx_common import natsconn

from sbx_api.state import AppState

logger = logging.getLogger(__name__)

DB_TIMEOUT = 2.0
# The orchestrator answers on NATS with the Docker engine's status; a missing reply is "down".
DOCKER_TIMEOUT = 1.0


@dataclass(frozen=True)
class Checks:
    db: bool
    nats: bool
    docker: bool


async def database_ok(state: AppState) -> bool:
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            return bool(await state.pool.fetchval("SELECT 1") == 1)
    except Exception:
        logger.warning("database check failed", exc_info=True)
        return False


async def docker_ok(state: AppState) -> bool:
    return await natsconn.orchestrator_reaches_docker(state.nc, DOCKER_TIMEOUT)


async def run_checks(state: AppState, *, docker: bool = True) -> Checks:
    db, dock = await asyncio.gather(database_ok(state), docker_ok(state) if docker else _true())
    return Checks(db=db, nats=state.nc.is_connected, docker=dock)


async def _true() -> bool:
    return True
