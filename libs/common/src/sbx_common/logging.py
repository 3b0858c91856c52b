"""JSON logging with a trace id and redaction of credentials and secret values.

Every service calls `configure_logging(service)` once. Records are one JSON object per line.
Redaction works at two levels: keys that look like credentials have their values replaced, and
any string registered through `register_secret()` (e.g. a decrypted secret value held by the
orchestrator) is masked wherever it appears in a message.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import traceback
from typing import Any

from sbx_common.timeutil import utcnow

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)

REDACTED = "[REDACTED]"
_SENSITIVE_KEY = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|cookie|master[_-]?key|value|credential)",
    re.IGNORECASE,
)
_INLINE_PATTERNS = [
    # Bearer tokens and JWTs anywhere in free text.
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Platform API keys.
    re.compile(r"sk_[A-Za-z0-9_-]{16,}"),
    # Passwords embedded in connection URLs.
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    # ?token=... in WebSocket URLs.
    re.compile(r"(?i)(token=)[^&\s\"']+"),
]

_secret_values: set[str] = set()
_secret_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask `value` in every later log line of this process (used for decrypted secrets)."""
    if len(value) >= 4:
        with _secret_lock:
            _secret_values.add(value)


def forget_secret(value: str) -> None:
    with _secret_lock:
        _secret_values.discard(value)


def redact_text(text: str) -> str:
    for pattern in _INLINE_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    with _secret_lock:
        values = list(_secret_values)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(value: Any, key: str | None = None) -> Any:
    """Redact a structure recursively: credential-like keys lose their values."""
    if key is not None and _SENSITIVE_KEY.search(key) and not isinstance(value, dict | list):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# Attributes every record has, and uvicorn's ANSI-coloured duplicate of the message.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        trace_id = trace_id_var.get()
        if trace_id:
            entry["traceId"] = trace_id
        extra = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}
        if extra:
            entry.update(redact(extra))
        if record.exc_info:
            entry["error"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log through the same handler; their access logs are replaced by our own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers[:] = []
        lib_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
