"""What the streams domain sends: event objects, log frames, status frames.

Log lines are written as JSON text once, straight from their fields (`log_line_json`), and framed
by string joins: a logs socket sends thousands of lines a second, and a dict and a `json.dumps`
per line (after a pydantic model per line of each live batch) took most of the API's CPU there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from json.encoder import encode_basestring
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


def millis(timestamp: str) -> str:
    """An RFC 3339 UTC timestamp (`...Z`, any number of fraction digits, as the log shipper's
    messages carry Docker's) cut to milliseconds: what `rfc3339` writes for the same instant."""
    if len(timestamp) == 20 and timestamp[19] == "Z":
        return timestamp[:19] + ".000Z"
    if len(timestamp) > 21 and timestamp[19] == "." and timestamp[-1] == "Z":
        return timestamp[:20] + (timestamp[20:-1] + "00")[:3] + "Z"
    stamp = rfc3339(datetime.fromisoformat(timestamp))
    assert stamp is not None
    return stamp


def log_line_json(seq: int, stream: str, text: str, timestamp: str) -> str:
    """`{seq, stream, text, timestamp}` as JSON text (the json module's C string escaper, with
    UTF-8 kept as is: what `json.dumps(..., ensure_ascii=False)` writes)."""
    return f'{{"seq":{seq},"stream":"{stream}","text":{encode_basestring(text)},"timestamp":"{timestamp}"}}'


def log_frame_json(line_json: str) -> str:
    """The contract's one-line frame `{type: "log", seq, stream, text, timestamp}`."""
    return '{"type":"log",' + line_json[1:]


def log_batch_frame_json(line_jsons: Sequence[str]) -> str:
    """The batch frame of `?batch=true`: `{type: "logs", lines: [{seq, stream, text, timestamp}]}`."""
    return '{"type":"logs","lines":[' + ",".join(line_jsons) + "]}"


def status_frame(status: str) -> dict[str, Any]:
    return {"type": "status", "status": status}
