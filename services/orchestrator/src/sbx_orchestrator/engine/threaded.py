"""The docker SDK's streams (archives in and out of a container) are blocking iterators: they are
read in a worker thread and handed to the event loop one item at a time through a small queue,
so a slow reader holds the stream back instead of filling memory, and a reader that goes away
stops the worker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")

POLL = 0.5  # how often a worker blocked on the event loop checks whether the transfer ended
QUEUE_ITEMS = 4


class Stopped(Exception):
    """The transfer ended on the event loop's side while the worker waited."""


def wait(future: Any, stop: threading.Event) -> Any:
    """The result of `future` (a call made on the event loop from a worker thread); `Stopped`
    once `stop` is set while it is pending."""
    while True:
        try:
            return future.result(POLL)
        except FutureTimeout:
            if stop.is_set():
                future.cancel()
                raise Stopped from None


class _End:
    pass


_END = _End()


async def iterate_in_thread(
    executor: Executor, items: Callable[[], Iterator[T]], queue_items: int = QUEUE_ITEMS
) -> AsyncIterator[T]:
    """What `items()` yields, iterated in a worker of `executor`; what it raises is raised here.
    Leaving the loop early (or being cancelled) stops the worker at its next item."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | BaseException | _End] = asyncio.Queue(queue_items)
    stop = threading.Event()

    def put(item: T | BaseException | _End) -> None:
        if stop.is_set():
            raise Stopped
        wait(asyncio.run_coroutine_threadsafe(queue.put(item), loop), stop)

    def produce() -> None:
        try:
            for item in items():
                put(item)
            put(_END)
        except Stopped:
            return
        except BaseException as exc:  # handed to the reader
            with contextlib.suppress(Stopped):
                put(exc)

    future = loop.run_in_executor(executor, produce)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.shield(future)
