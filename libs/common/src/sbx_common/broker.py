"""FastStream on a worker's own NATS connection.

`sbx_common.worker` opens one connection per process (reconnecting forever, its state logged,
reported by /health/ready) and drains it at shutdown. `WorkerBroker` subscribes and publishes on
that connection: it opens none of its own and leaves closing it to the worker. FastStream logs
through the service's JSON logging, its warnings and errors only: its access lines ("Received",
"Processed") and its task bookkeeping would double the log. A stream is bound as `bound_stream(name)`
(`declare=False`): streams are declared only by `sbx_common.topology`, and FastStream must never
create or rewrite one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from faststream.nats import JStream, NatsBroker
from faststream.nats.subscriber.usecases import LogicSubscriber
from nats.aio.client import Client

_logger = logging.getLogger("faststream.broker")
_logger.setLevel(logging.WARNING)


class WorkerBroker(NatsBroker):
    def __init__(self, nc: Client, *, graceful_timeout: float | None = None) -> None:
        super().__init__(
            logger=_logger,
            log_level=logging.DEBUG,
            graceful_timeout=graceful_timeout,
        )
        self._worker_connection = nc

    @property
    def inbox_prefix(self) -> bytes:
        """The connection's own reply prefix, with its dot, for a pull subscriber's inbox:
        FastStream would otherwise use the plain `_INBOX.`, which a NATS user with replies of
        its own (sbx_common.nats_permissions) may not subscribe to."""
        inbox = self._worker_connection.new_inbox()
        return inbox[: inbox.rindex(".") + 1].encode()

    async def _connect(self) -> Client:
        self.config.connect(self._worker_connection)
        return self._worker_connection

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        """Stop the subscribers (each waits up to `graceful_timeout` for its handlers); the
        connection stays open: the worker drains it."""
        self._connection = None  # NatsBroker.stop drains the connection it holds
        await super().stop(exc_type, exc_val, exc_tb)

    async def answer(
        self,
        subject: str,
        handler: Callable[..., Awaitable[bytes]],
        *,
        queue: str,
        max_workers: int | None = None,
    ) -> LogicSubscriber[Any]:
        """Answer the requests on `subject` from now on, one member of the queue group `queue`
        taking each: the handler's bytes are the reply; up to `max_workers` requests at once
        (one at a time without). The broker must be connected; `.stop()` the subscriber to end."""
        if max_workers is None:
            subscriber: LogicSubscriber[Any] = self.subscriber(subject, queue=queue)
        else:
            subscriber = self.subscriber(subject, queue=queue, max_workers=max_workers)
        subscriber(handler)
        await subscriber.start()
        return subscriber


def bound_stream(name: str, description: str | None = None) -> JStream:
    """A stream of `sbx_common.topology` as FastStream binds it: never declared or updated."""
    return JStream(name, declare=False, description=description)
