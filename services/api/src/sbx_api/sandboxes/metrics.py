"""The latest metrics sample of a running sandbox: JetStream KV `sbx_metrics`, written by the
metrics collector."""

from __future__ import annotations

import json
import uuid
from typing import Any

import nats.errors
import nats.js.errors
from sbx_common import subjects
from sbx_common.errors import NotRunning, Unavailable
from sbx_common.status import Status
from sbx_common.topology import KV_METRICS

from sbx_api.deps import Caller
from sbx_api.sandboxes.service import get
from sbx_api.state import AppState

# Right after a sandbox starts, the metrics collector may not have sampled it yet.
FIRST_SAMPLE_WAIT_SECONDS = 3.0


async def latest_sample(state: AppState, caller: Caller, sandbox_id: uuid.UUID) -> dict[str, Any]:
    """The latest sample from KV `sbx_metrics`. A running sandbox not sampled yet is waited for
    up to FIRST_SAMPLE_WAIT_SECONDS (the next KV put), then 503 `UNAVAILABLE`."""
    row = await get(state, caller, sandbox_id)
    if row.status != Status.RUNNING:
        raise NotRunning(f"The sandbox is {row.status}; metrics exist only while it runs.")
    key = str(sandbox_id)
    try:
        bucket = await state.js.key_value(KV_METRICS)
        try:
            entry = await bucket.get(key)
            value = entry.value
        except nats.js.errors.KeyNotFoundError:
            value = await _next_sample(state, key)
    except (nats.errors.Error, TimeoutError) as exc:
        raise Unavailable("Metrics are unavailable right now.") from exc
    if value is None:
        raise Unavailable("No metrics sample exists yet for this sandbox; retry in a moment.")
    try:
        sample = json.loads(value)
    except ValueError:
        sample = None
    if not isinstance(sample, dict):
        raise Unavailable("The metrics sample is unreadable.")
    return sample


async def _next_sample(state: AppState, key: str) -> bytes | None:
    sub = await state.nc.subscribe(subjects.metrics_kv(key))
    try:
        bucket = await state.js.key_value(KV_METRICS)
        try:  # it may have landed between the first get and the subscription
            return (await bucket.get(key)).value
        except nats.js.errors.KeyNotFoundError:
            pass
        try:
            msg = await sub.next_msg(timeout=FIRST_SAMPLE_WAIT_SECONDS)
        except nats.errors.TimeoutError:
            return None
        return msg.data or None
    finally:
        await sub.unsubscribe()
