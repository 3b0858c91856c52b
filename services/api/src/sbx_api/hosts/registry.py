"""The hosts as this API process last read them from the KV bucket `sbx_hosts` (at most
`CACHE_SECONDS` old: heartbeats come every few seconds, and placement re-checks room under a lock
in PostgreSQL, so a second-old view of who is alive is good enough).

When the bucket cannot be read (a NATS server lost and the bucket electing a leader, a few
seconds) the last view read is used: whether a host is up is judged by its heartbeat's own time,
so an old view stops offering a host as soon as its heartbeat would have gone stale anyway, and a
single-host installation keeps placing on its one host. Only a process that never read the
bucket answers 503."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from sbx_common.errors import Unavailable
from sbx_common.hosts import HostHeartbeat, read_hosts

if TYPE_CHECKING:  # the state holds this cache
    from sbx_api.state import AppState

logger = logging.getLogger(__name__)

CACHE_SECONDS = 1.0


class HostCache:
    def __init__(self) -> None:
        self._hosts: dict[str, HostHeartbeat] | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def hosts(self, state: AppState) -> dict[str, HostHeartbeat]:
        """Every host's latest heartbeat; 503 when the bucket cannot be read and never was."""
        async with self._lock:
            if time.monotonic() - self._read_at > CACHE_SECONDS:
                try:
                    self._hosts = await read_hosts(state.js)
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                    if self._hosts is None:
                        raise Unavailable("The hosts' registry is unavailable; nothing was created.") from exc
                    logger.warning("hosts' registry unreadable: last view used", extra={"error": repr(exc)})
                # A failed read is tried again after CACHE_SECONDS too, not by every create.
                self._read_at = time.monotonic()
            assert self._hosts is not None
            return self._hosts
