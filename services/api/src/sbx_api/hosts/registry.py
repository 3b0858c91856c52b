"""The hosts as this API process last read them from the KV bucket `sbx_hosts` (at most
`CACHE_SECONDS` old: heartbeats come every few seconds, and placement re-checks room under a lock
in PostgreSQL, so a second-old view of who is alive is good enough)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from sbx_common.errors import Unavailable
from sbx_common.hosts import HostHeartbeat, read_hosts

if TYPE_CHECKING:  # the state holds this cache
    from sbx_api.state import AppState

CACHE_SECONDS = 1.0


class HostCache:
    def __init__(self) -> None:
        self._hosts: dict[str, HostHeartbeat] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def hosts(self, state: AppState) -> dict[str, HostHeartbeat]:
        """Every host's latest heartbeat; 503 when the bucket cannot be read."""
        async with self._lock:
            if time.monotonic() - self._read_at > CACHE_SECONDS:
                try:
                    self._hosts = await read_hosts(state.js)
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                    raise Unavailable("The hosts' registry is unavailable; nothing was created.") from exc
                self._read_at = time.monotonic()
            return self._hosts
