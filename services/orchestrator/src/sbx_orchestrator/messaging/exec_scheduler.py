"""Fair shares of the exec pool between users.

The pool runs SBX_EXEC_THREADS commands at once; one user runs at most SBX_EXEC_THREADS_PER_USER
of them. A request that cannot start waits in its user's own queue, and a freed slot goes to
the next user in turn (round robin over users with a request waiting and a share left), so a
user with many long commands waits behind their own commands only, never in front of another
user's. The time spent waiting is not part of a command's timeout: that starts when it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict, deque


class QueueFull(Exception):
    """The user already has SBX_EXEC_QUEUE_PER_USER commands waiting."""


class Slot:
    """One granted run slot; given back when the `with` block ends."""

    def __init__(self, scheduler: FairScheduler, user: uuid.UUID) -> None:
        self._scheduler = scheduler
        self._user = user

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._scheduler._release(self._user)


class FairScheduler:
    """Hands out `slots` run slots, at most `per_user` to one user, round robin between users."""

    def __init__(self, slots: int, per_user: int, queue_per_user: int) -> None:
        self.slots = slots
        self.per_user = min(per_user, slots)
        self.queue_per_user = queue_per_user
        self._running: dict[uuid.UUID, int] = {}
        self._total = 0
        # Users with requests waiting, in the order they get their next turn.
        self._waiting: OrderedDict[uuid.UUID, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def running(self) -> int:
        return self._total

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def running_for(self, user: uuid.UUID) -> int:
        return self._running.get(user, 0)

    async def acquire(self, user: uuid.UUID, max_wait: float) -> Slot:
        """A run slot (hold it with `with`). TimeoutError after `max_wait` seconds in the queue,
        QueueFull when the user's queue is full."""
        await self._acquire(user, max_wait)
        return Slot(self, user)

    async def _acquire(self, user: uuid.UUID, max_wait: float) -> None:
        if user not in self._waiting and self._can_run(user):
            self._grant(user)
            return
        queue = self._waiting.get(user)
        if queue is None:
            queue = self._waiting[user] = deque()
        if len(queue) >= self.queue_per_user:
            if not queue:
                del self._waiting[user]
            raise QueueFull()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), max_wait)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._release(user)  # granted just as the wait ended: give the slot back
            else:
                turn.cancel()
                self._forget(user, turn)
            raise

    def _can_run(self, user: uuid.UUID) -> bool:
        return self._total < self.slots and self._running.get(user, 0) < self.per_user

    def _grant(self, user: uuid.UUID) -> None:
        self._running[user] = self._running.get(user, 0) + 1
        self._total += 1

    def _release(self, user: uuid.UUID) -> None:
        left = self._running.get(user, 0) - 1
        if left > 0:
            self._running[user] = left
        else:
            self._running.pop(user, None)
        self._total -= 1
        self._dispatch()

    def _forget(self, user: uuid.UUID, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(user)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(turn)
        if not queue:
            del self._waiting[user]

    def _dispatch(self) -> None:
        """Give free slots to waiting users in turn; a user who is given one goes last."""
        while self._total < self.slots:
            user = next((u for u in self._waiting if self._running.get(u, 0) < self.per_user), None)
            if user is None:
                return
            queue = self._waiting[user]
            turn = queue.popleft()
            if queue:
                self._waiting.move_to_end(user)
            else:
                del self._waiting[user]
            if turn.done():  # its waiter gave up
                continue
            self._grant(user)
            turn.set_result(None)
