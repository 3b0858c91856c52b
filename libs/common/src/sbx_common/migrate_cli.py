"""`sbx-migrate`: apply the SQL migrations and the JetStream topology, once, at start-up."""

from __future__ import annotations

import asyncio
import logging

from sbx_common import db, natsconn, topology
from sbx_common.logging import configure_logging
from sbx_common.settings import CommonSettings

logger = logging.getLogger("sbx.migrate")


async def run(settings: CommonSettings) -> None:
    applied = await db.migrate(settings.database_url.get_secret_value())
    nc = await natsconn.connect_with(settings, "sbx-migrate")
    try:
        await topology.apply_topology(nc.jetstream(), settings.stream_replicas)
    finally:
        await nc.close()
    logger.info("migrations and topology applied", extra={"migrations": applied})


def main() -> None:
    settings = CommonSettings()
    configure_logging("migrate", settings.log_level)
    asyncio.run(run(settings))
