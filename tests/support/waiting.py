"""Waiting for a condition instead of for a fixed time: poll until it holds, fail with the last
value seen when it does not in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ConditionTimeout(AssertionError):
    """A condition waited for did not come true in time (a failed assertion, like any other)."""


async def wait_for(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll an async probe until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise ConditionTimeout(f"{what} not met within {timeout}s (last value: {last!r})")


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll a plain (blocking) predicate until it holds, for code that runs outside the event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"condition not met within {timeout}s")
        time.sleep(interval)
