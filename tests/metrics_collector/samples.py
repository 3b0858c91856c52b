"""The collector's output: the latest sample of a sandbox in KV `sbx_metrics`, and its series
on the collector's /metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from tests.support.platform import Platform
from tests.support.waiting import wait_for


async def sample_of(kv: KeyValue, sandbox_id: object) -> dict[str, Any] | None:
    try:
        entry = await kv.get(str(sandbox_id))
    except KeyNotFoundError:
        return None
    return json.loads(entry.value) if entry.value else None


async def wait_sample(
    kv: KeyValue, sandbox_id: object, timeout: float = 15, newer_than: str = ""
) -> dict[str, Any]:
    """The sandbox's sample, once there is one taken after `newer_than` (a timestamp)."""

    async def newer() -> dict[str, Any] | None:
        sample = await sample_of(kv, sandbox_id)
        return sample if sample is not None and sample["timestamp"] > newer_than else None

    return await wait_for(newer, timeout, 0.1, f"a metrics sample for {sandbox_id}")


async def wait_no_sample(kv: KeyValue, sandbox_id: object, timeout: float = 10) -> float:
    """Wait until the sandbox has no sample; how long that took."""
    started = time.monotonic()

    async def gone() -> bool:
        return await sample_of(kv, sandbox_id) is None

    await wait_for(gone, timeout, 0.1, f"no metrics sample for {sandbox_id}")
    return time.monotonic() - started


async def exported(platform: Platform, sandbox_id: object) -> dict[str, float]:
    """The collector's series of one sandbox, by metric name."""
    text = await platform.metrics("metrics-collector")
    needle = f'{{sandbox_id="{sandbox_id}"}} '
    return {
        line.split("{", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if needle in line
    }
