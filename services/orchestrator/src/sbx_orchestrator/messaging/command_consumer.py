"""Consuming SBX_CMD: the durable pull consumer `orchestrator__commands__<hostId>`, filtered to
the commands addressed to this orchestrator's host (`sbx.cmd.<hostId>.sandbox.*`). Orchestrators
of one host share it (a work queue); those of other hosts never see its commands.

Delivery policy:
- explicit acks; a command is acknowledged once it has settled (or been recognised as stale, a
  duplicate, or aimed at a terminal sandbox);
- while a command is handled (including while it waits for its sandbox's lock), a progress ack
  goes out every third of `ack_wait`, so long Docker operations are not redelivered, while a
  crashed orchestrator's commands come back `ack_wait` after the crash;
- a failed attempt is negatively acknowledged with a delay from `command_retry_delays` (the
  backoff); after `max_deliver` deliveries the sandbox becomes `failed`, a DeadLetter goes to
  `sbx.dlq.<verb>`, and the message is terminated: no endless loop, no silent drop;
- a message that is not a valid command can never succeed: it is logged and terminated.

The consumer is driven with nats-py rather than FastStream's pull subscriber: FastStream fetches
the next message while all its workers are busy (the prefetched message then waits, unacked and
without progress acks, until its ack_wait runs out and it is delivered twice; ag2ai/faststream
issue #2563, whose fix, PR #3091, is not merged), and nats-py's
`pull_subscribe`, which FastStream uses, never updates an existing consumer's settings. Here a
message is fetched only when a worker slot is free, and the consumer's settings are applied
(create or update) at start-up. The stream itself is never declared or changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sbx_common import subjects, telemetry, topology
from sbx_common.consumer_lag import start_lag_export
from sbx_common.logging import redact_text, scoped_redaction, trace_id_var
from sbx_common.messages import SandboxCommand
from sbx_common.nats_permissions import orchestrator_consumer

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.context import OrchestratorContext
from sbx_orchestrator.metrics import COMMAND_DURATION

logger = logging.getLogger(__name__)

FETCH_WAIT = 1.0  # seconds one fetch waits for a message (also bounds how long a stop waits)
DOCKER_DOWN_PAUSE = 1.0


def consumer_config(settings: OrchestratorSettings) -> ConsumerConfig:
    return ConsumerConfig(
        name=orchestrator_consumer(settings.host_id),
        durable_name=orchestrator_consumer(settings.host_id),
        filter_subject=subjects.commands_of_host(settings.host_id),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.command_ack_wait,
        max_deliver=settings.command_max_deliver,
        max_ack_pending=1000,
        max_waiting=512,
    )


class CommandConsumer:
    """Fetches commands while a worker slot is free and handles each in its own task."""

    def __init__(self, context: OrchestratorContext) -> None:
        self.context = context
        self.settings = context.settings
        self._slots = asyncio.Semaphore(self.settings.command_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None
        self._consumer = orchestrator_consumer(self.settings.host_id)

    async def start(self) -> None:
        js = self.context.js
        await js.add_consumer(topology.STREAM_CMD, consumer_config(self.settings))
        self._subscription = await js.pull_subscribe_bind(durable=self._consumer, stream=topology.STREAM_CMD)
        self._fetching = asyncio.create_task(self._fetch_loop(self._subscription), name="commands-fetch")
        self._lag = start_lag_export(
            js, topology.STREAM_CMD, self._consumer, self.settings.consumer_metrics_interval
        )
        logger.info(
            "consuming commands",
            extra={
                "consumer": self._consumer,
                "ackWait": self.settings.command_ack_wait,
                "maxDeliver": self.settings.command_max_deliver,
                "retryDelays": self.settings.command_retry_delays,
            },
        )

    async def stop(self) -> None:
        """Stop fetching, let commands under way finish (bounded), then let go of the rest."""
        self._stopping = True
        if self._lag is not None:
            self._lag.cancel()
        if self._fetching is not None:
            # The fetch loop ends by itself within FETCH_WAIT (cancelling a fetch could strand a
            # message already on its way until its ack_wait); it is cancelled only if it waits
            # for a free slot.
            await asyncio.wait({self._fetching}, timeout=FETCH_WAIT + 1)
            self._fetching.cancel()
        await asyncio.gather(
            *(t for t in (self._fetching, self._lag) if t is not None), return_exceptions=True
        )
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_timeout)
            for task in pending:
                task.cancel()  # its message is redelivered after ack_wait; handlers are idempotent
            if pending:
                logger.warning("commands still under way at shutdown", extra={"count": len(pending)})
                await asyncio.gather(*pending, return_exceptions=True)
        if self._subscription is not None:
            with suppress(Exception):
                await self._subscription.unsubscribe()

    # --- fetching ---

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription) -> None:
        while not self._stopping:
            await self._slots.acquire()
            handed_over = False
            try:
                if self._stopping:
                    return
                if not await self.context.engine.ping():
                    # Commands would only fail while the engine is down: leave them in the stream.
                    await asyncio.sleep(DOCKER_DOWN_PAUSE)
                    continue
                try:
                    messages = await subscription.fetch(1, timeout=FETCH_WAIT)
                except NatsTimeoutError:
                    continue
                except Exception as exc:
                    if self._stopping:
                        return
                    logger.warning("fetching commands failed", extra={"error": repr(exc)})
                    await asyncio.sleep(FETCH_WAIT)
                    continue
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._finished)
                    handed_over = True
            finally:
                if not handed_over:
                    self._slots.release()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    # --- handling one delivery ---

    async def _process(self, message: Msg) -> None:
        started = time.monotonic()
        verb, outcome = "unknown", "error"
        keep_alive = asyncio.create_task(self._keep_alive(message))
        try:
            try:
                command = SandboxCommand.model_validate_json(message.data)
            except ValidationError:
                logger.error("malformed command terminated", extra={"subject": message.subject})
                await message.term()
                outcome = "malformed"
                return
            verb = command.verb.value
            token = trace_id_var.set(command.trace_id)
            try:
                # Continues the trace of the request that published the command (headers);
                # the sandbox's secret values are masked in every record written meanwhile.
                with (
                    scoped_redaction(str(command.sandbox_id)),
                    telemetry.consumer_span(
                        f"command {verb}",
                        message.headers,
                        {
                            "messaging.system": "nats",
                            "messaging.destination.name": message.subject,
                            "sbx.verb": verb,
                            "sbx.sandbox_id": str(command.sandbox_id),
                            "sbx.command_id": str(command.id),
                        },
                    ) as span,
                ):
                    outcome = await self._attempt(message, command)
                    span.set_attribute("sbx.outcome", outcome)
            finally:
                trace_id_var.reset(token)
        except Exception:
            # Only acking itself can fail here (NATS gone): the command is redelivered later.
            logger.exception("could not acknowledge a command")
        finally:
            keep_alive.cancel()
            COMMAND_DURATION.labels(verb, outcome).observe(time.monotonic() - started)

    async def _attempt(self, message: Msg, command: SandboxCommand) -> str:
        async with self.context.locks.hold(command.sandbox_id):
            if self._stopping:
                await message.nak()  # not started: another orchestrator may take it at once
                return "requeued"
            try:
                outcome = await self.context.lifecycle.handle(command)
            except Exception as exc:
                return await self._failed_attempt(message, command, exc)
            await message.ack()
            return outcome.value

    async def _failed_attempt(self, message: Msg, command: SandboxCommand, exc: Exception) -> str:
        deliveries = message.metadata.num_delivered or 1
        error = redact_text(f"{type(exc).__name__}: {exc}")[:500]
        context = {
            "sandboxId": str(command.sandbox_id),
            "commandId": str(command.id),
            "verb": command.verb.value,
            "deliveries": deliveries,
            "error": error,
        }
        if deliveries < self.settings.command_max_deliver:
            delay = self.settings.retry_delay(deliveries)
            logger.warning("command attempt failed, retrying", extra={**context, "retryIn": delay})
            await message.nak(delay=delay)
            return "retry"
        logger.error("command failed after its last delivery", extra=context)
        try:
            await self.context.lifecycle.give_up(command, deliveries)
        except Exception:
            logger.exception("could not record the failed sandbox", extra=context)
        try:
            await self.context.events.dead_letter(command, error, deliveries)
        except Exception:
            logger.exception("could not publish the dead letter", extra=context)
        await message.term()
        return "dead_lettered"

    async def _keep_alive(self, message: Msg) -> None:
        interval = self.settings.command_ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            with suppress(Exception):
                await message.in_progress()
