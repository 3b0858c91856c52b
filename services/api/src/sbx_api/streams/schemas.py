"""What the streams domain sends: event objects, log frames, status frames."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sbx_common.messages import SandboxEvent
from sbx_common.timeutil import rfc3339


def event_object(stream_seq: int, event: SandboxEvent) -> dict[str, Any]:
    """`{id, type, sandboxId, status, occurredAt, data}`; `id` is the event's position in SBX_EVT,
    usable as `Last-Event-ID` (SSE) or `since` (WebSocket) to resume right after it."""
    data = dict(event.data)
    if event.reason is not None:
        data.setdefault("reason", event.reason)
    return {
        "id": str(stream_seq),
        "type": event.type,
        "sandboxId": str(event.sandbox_id),
        "status": event.status.value,
        "occurredAt": rfc3339(event.occurred_at),
        "data": data,
    }


def log_frame(seq: int, stream: str, text: str, ts: datetime) -> dict[str, Any]:
    return {"type": "log", "seq": seq, "stream": stream, "text": text, "timestamp": rfc3339(ts)}


def status_frame(status: str) -> dict[str, Any]:
    return {"type": "status", "status": status}
