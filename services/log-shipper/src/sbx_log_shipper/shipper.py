"""The log shipper: which containers to follow, and when.

A container is followed when its `running` event arrives (durable consumer
`log-shipper__events__<hostId>` on SBX_EVT, plain `log-shipper__events` for the host `local`: each
host hears every event and follows what its own engine runs; a FastStream pull subscriber, so
events sent while the shipper was down still arrive), at start-up for every container of this
instance that already runs, and by a periodic rescan that catches anything else (a Docker
restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid

import asyncpg
from faststream.middlewares import AckPolicy as Acking
from faststream.nats import PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Gauge
from pydantic import ValidationError
from sbx_common import db, labels, subjects, telemetry
from sbx_common.broker import WorkerBroker, bound_stream
from sbx_common.consumer_lag import start_lag_export
from sbx_common.messages import SandboxEvent
from sbx_common.nats_permissions import log_shipper_consumer
from sbx_common.status import Status
from sbx_common.tasks import cancel_and_wait
from sbx_common.topology import STREAM_EVT

from sbx_log_shipper.config import LogShipperSettings
from sbx_log_shipper.docker_engine import DockerEngine, DockerError
from sbx_log_shipper.follower import Follower, FollowSettings, Shared
from sbx_log_shipper.store import LogStore

logger = logging.getLogger(__name__)

GC_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)
FORGET_INTERVAL = 3600.0  # seconds between deletions of long-destroyed sandboxes' lines
FOLLOWED = Gauge("log_shipper_containers_followed", "Sandbox containers whose logs are being followed")


class LogShipper:
    """The worker run by `sbx_common.worker.run_worker`."""

    def __init__(self, settings: LogShipperSettings) -> None:
        self.settings = settings
        self.docker = DockerEngine(settings.docker_host)
        self.followers: dict[uuid.UUID, Follower] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: asyncpg.Pool | None = None
        self._shared: Shared | None = None
        self._broker: WorkerBroker | None = None

    async def start(self, nc: NatsClient) -> None:
        settings = self.settings
        # No reset query on release: the shipper keeps no session state on a connection, and the
        # reset was one more round trip per stored batch.
        self._pool = await db.create_pool(
            settings.database_url.get_secret_value(), max_size=8, session_reset=False
        )
        js = nc.jetstream()
        self._shared = Shared(
            docker=self.docker,
            store=LogStore(self._pool, settings.log_retention_lines),
            js=js,
            max_payload=nc.max_payload,
            settings=FollowSettings(
                instance=settings.instance,
                max_line_bytes=settings.log_max_line_bytes,
                batch_max_lines=settings.log_batch_max_lines,
                batch_linger_seconds=settings.log_batch_linger_seconds,
                max_pending_lines=settings.log_max_pending_lines,
            ),
        )
        self._broker = WorkerBroker(nc)
        self._broker.subscriber(
            subjects.event("*", "*", Status.RUNNING.value),
            stream=bound_stream(STREAM_EVT),
            durable=log_shipper_consumer(settings.host_id),
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
                max_deliver=5,
                deliver_policy=DeliverPolicy.NEW,  # containers running before are found by the scan
            ),
            pull_sub=PullSub(batch_size=100, timeout=5.0),
            inbox_prefix=self._broker.inbox_prefix,
            ack_policy=Acking.MANUAL,
        )(self._on_running)
        await self._broker.start()
        # Every line makes a few short-lived objects: the collector's full passes over the
        # long-lived start-up heap (FastStream, pydantic, asyncpg) cost more than the lines. The
        # heap made so far is set aside (`freeze`) and young passes come less often.
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        self._tasks = [
            asyncio.create_task(self._rescan_forever(), name="rescan"),
            start_lag_export(js, STREAM_EVT, log_shipper_consumer(self.settings.host_id)),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._broker is not None:
            # Unsubscribes too: a fetch answered after its cancellation would hold up the drain.
            with contextlib.suppress(NatsError, TimeoutError):
                await self._broker.stop()
        await asyncio.gather(*(f.stop() for f in list(self.followers.values())), return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    async def checks(self) -> dict[str, bool]:
        database = self._pool is not None and await db.reachable(self._pool)
        return {"docker": await self.docker.ping(), "database": database}

    def follow(self, sandbox_id: uuid.UUID) -> None:
        """Follow the sandbox's container (once; a repeat makes the current follower look again)."""
        assert self._shared is not None
        follower = self.followers.get(sandbox_id)
        if follower is not None:
            follower.poke()
            return
        self.followers[sandbox_id] = Follower(
            self._shared, sandbox_id, labels.container_name(sandbox_id), self._forget
        )
        FOLLOWED.set(len(self.followers))

    def _forget(self, follower: Follower) -> None:
        if self.followers.get(follower.sandbox_id) is follower:
            del self.followers[follower.sandbox_id]
        FOLLOWED.set(len(self.followers))

    async def _on_running(self, message: NatsMessage) -> None:
        """A sandbox's container runs: follow it. Every event is acknowledged, a malformed one
        too (it can never be followed)."""
        msg = message.raw_message
        try:
            event = SandboxEvent.model_validate_json(msg.data)
        except ValidationError:
            logger.warning("ignoring a malformed event", extra={"subject": msg.subject})
        else:
            # Continues the trace of the command whose container now runs (headers).
            attributes = {"sbx.sandbox_id": str(event.sandbox_id)}
            with telemetry.consumer_span("log-shipper follow", msg.headers, attributes):
                self.follow(event.sandbox_id)
        with contextlib.suppress(NatsError, TimeoutError):
            await message.ack()

    async def _rescan_forever(self) -> None:
        """Follow what runs unfollowed; about once an hour, forget long-destroyed sandboxes' lines."""
        loop = asyncio.get_running_loop()
        forgotten_at: float | None = None  # not 0.0: the loop's clock starts near boot time
        while True:
            try:
                await self.rescan()
            except DockerError as exc:
                logger.warning("listing running containers failed", extra={"error": repr(exc)})
            if forgotten_at is None or loop.time() - forgotten_at > FORGET_INTERVAL:
                forgotten_at = loop.time()
                try:
                    assert self._shared is not None
                    count = await self._shared.store.forget_destroyed(self.settings.log_keep_destroyed_days)
                    if count:
                        logger.info("logs of destroyed sandboxes deleted", extra={"sandboxes": count})
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    logger.warning("deleting old logs failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.log_rescan_seconds)

    async def rescan(self) -> None:
        for container in await self.docker.running_containers(labels.instance_filter(self.settings.instance)):
            value = (container.get("Labels") or {}).get(labels.SANDBOX_ID)
            try:
                sandbox_id = uuid.UUID(value)
            except (TypeError, ValueError):
                continue
            if sandbox_id not in self.followers:
                self.follow(sandbox_id)
