"""One lock per sandbox: a sandbox's commands and container events are handled one at a time,
while different sandboxes proceed in parallel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class SandboxLocks:
    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._users: dict[uuid.UUID, int] = {}

    @asynccontextmanager
    async def hold(self, sandbox_id: uuid.UUID) -> AsyncIterator[None]:
        lock = self._locks.setdefault(sandbox_id, asyncio.Lock())
        self._users[sandbox_id] = self._users.get(sandbox_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[sandbox_id] -= 1
            if self._users[sandbox_id] == 0:  # nobody holds or waits: forget the lock
                del self._users[sandbox_id]
                del self._locks[sandbox_id]

    def __len__(self) -> int:
        return len(self._locks)
