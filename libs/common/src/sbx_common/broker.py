"""FastStream on a worker's own NATS connection.

`sbx_common.worker` opens one connection per process (reconnecting forever, its state logged,
reported by /health/ready) and drains it at shutdown. `WorkerBroker` subscribes and publishes on
that connection: it opens none of its own and leaves closing it to the worker. Its access lines
("Received", "Processed") are debug records of the `faststream` logger, so they go through the
service's JSON logging and stay out of the INFO log. A stream is bound as `bound_stream(name)`
(`declare=False`): streams are declared only by `sbx_common.topology`, and FastStream must never
create or rewrite one.
"""

from __future__ import annotations

import logging
from types import TracebackType

from faststream.nats import JStream, NatsBroker
from nats.aio.client import Client


class WorkerBroker(NatsBroker):
    def __init__(self, nc: Client, *, graceful_timeout: float | None = None) -> None:
        super().__init__(
            logger=logging.getLogger("faststream"),
            log_level=logging.DEBUG,
            graceful_timeout=graceful_timeout,
        )
        self._worker_connection = nc

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


def bound_stream(name: str) -> JStream:
    """A stream of `sbx_common.topology` as FastStream binds it: never declared or updated."""
    return JStream(name, declare=False)
