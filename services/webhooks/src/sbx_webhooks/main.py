"""`sbx-webhooks`: delivers sandbox events to the users' webhooks, signed, at least once.

Events come from the durable consumer `webhooks__events` on SBX_EVT; each matching webhook gets a
delivery row before the event is acked, and the dispatcher sends the rows, retrying with
backoff; the retention deletes old settled ones. The service writes `webhook_deliveries` and
`webhook_delivery_attempts` only.
"""

from __future__ import annotations

import asyncio

import asyncpg
from nats.aio.client import Client as NatsClient
from sbx_common import db
from sbx_common.broker import WorkerBroker
from sbx_common.consumer_lag import start_lag_export
from sbx_common.crypto import SecretBox
from sbx_common.tasks import cancel_and_wait
from sbx_common.topology import STREAM_EVT
from sbx_common.worker import run_worker

from sbx_webhooks.config import WebhooksSettings
from sbx_webhooks.dispatcher import Dispatcher
from sbx_webhooks.event_consumer import DURABLE, subscribe_events
from sbx_webhooks.retention import retention_loop


class Webhooks:
    def __init__(self, settings: WebhooksSettings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._broker: WorkerBroker | None = None
        self._dispatcher: Dispatcher | None = None
        self._lag: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None

    async def start(self, nc: NatsClient) -> None:
        s = self.settings
        box = SecretBox.from_settings(
            s.secrets_master_key.get_secret_value(), s.secrets_old_keys.get_secret_value()
        )
        self._pool = await db.create_pool(
            s.database_url.get_secret_value(), min_size=2, max_size=s.webhook_concurrency + 4
        )
        self._dispatcher = Dispatcher(s, self._pool, box)
        self._broker = WorkerBroker(nc)
        subscribe_events(self._broker, self._pool, self._dispatcher.wake)
        await self._broker.start()
        self._lag = start_lag_export(nc.jetstream(), STREAM_EVT, DURABLE)
        self._dispatcher.start()
        self._retention = asyncio.create_task(retention_loop(s, self._pool), name="webhook-retention")

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.stop()
        if self._dispatcher is not None:
            await self._dispatcher.stop()
        await cancel_and_wait([self._lag, self._retention])
        if self._pool is not None:
            await self._pool.close()

    async def checks(self) -> dict[str, bool]:
        return {"db": self._pool is not None and await db.reachable(self._pool)}


def main() -> None:
    settings = WebhooksSettings()
    run_worker("webhooks", settings, Webhooks(settings))
