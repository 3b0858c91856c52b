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
from types import TracebackType

from faststream.nats import JStream, NatsBroker
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


def bound_stream(name: str, description: str | None = None) -> JStream:
    """A stream of `sbx_common.topology` as FastStream binds it: never declared or updated."""
    return JStream(name, declare=False, description=description)
