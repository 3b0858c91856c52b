"""JSON logging with a trace id and redaction of credentials and secret values.

Every service calls `configure_logging(service)` once. Records are one JSON object per line.
Redaction works at two levels: keys that look like credentials have their values replaced, and
a string registered through `register_secret(value, scope)` (a decrypted secret value held by the
orchestrator, scoped to its sandbox) is masked in the records written while that scope is current
(`redaction_scope`). Scoping and a minimum length keep one tenant from blanking words out of
other tenants' (or the platform's) log lines with chosen "secrets"; the values kept are bounded in
number and bytes, oldest evicted first.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
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
    # Preview link tokens (`?sbx_preview=`, the `sbx_preview` cookie) and their bare form.
    re.compile(r"(?i)(sbx_preview=)[^&;\s\"']+"),
    re.compile(r"v1\.[A-Za-z0-9_-]{40,}\.[A-Za-z0-9_-]{40,}"),
]
# What every pattern above needs in the text (a superset): most strings of a log line (a
# method, a route, an id) have none of it and skip the seven substitutions, which were most of
# an access log line's cost.
_MAYBE_SECRET = re.compile(r"(?i)bearer|eyj|sk_|://|token=|sbx_preview=|v1\.")

# The scope (a sandbox id) whose registered secret values are masked in records written now.
redaction_scope: contextvars.ContextVar[str | None] = contextvars.ContextVar("redaction_scope", default=None)

MIN_SECRET_LENGTH = 8
MAX_SECRET_VALUES = 4096
MAX_SECRET_BYTES = 4 * 1024 * 1024


class SecretRedactor:
    """Secret values to mask, each tied to a scope, bounded in count and total size.

    A value shorter than `min_length` is not kept (masking it would blank common words); past
    either bound the oldest registrations are evicted (a value evicted is no longer masked, but
    it was registered long ago: the orchestrator registers a sandbox's secrets each time it
    creates its container, so the live ones are the newest).
    """

    def __init__(
        self,
        *,
        min_length: int = MIN_SECRET_LENGTH,
        max_values: int = MAX_SECRET_VALUES,
        max_bytes: int = MAX_SECRET_BYTES,
    ) -> None:
        self.min_length = min_length
        self.max_values = max_values
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], int] = OrderedDict()  # (scope, value) -> bytes
        self._by_scope: dict[str, set[str]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def register(self, scope: str, value: str) -> bool:
        """Mask `value` in records of `scope` from now on; False if it is too short or too big."""
        size = len(value.encode())
        if len(value) < self.min_length or size > self.max_bytes:
            return False
        key = (scope, value)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return True
            self._entries[key] = size
            self._by_scope.setdefault(scope, set()).add(value)
            self._bytes += size
            while len(self._entries) > self.max_values or self._bytes > self.max_bytes:
                self._drop(*next(iter(self._entries)))
        return True

    def forget(self, scope: str) -> None:
        """Stop masking every value of `scope` (its sandbox is gone)."""
        with self._lock:
            for value in list(self._by_scope.get(scope, ())):
                self._drop(scope, value)

    def values(self, scope: str | None) -> list[str]:
        if scope is None:
            return []
        with self._lock:
            # Longest first, so a value containing another is masked whole.
            return sorted(self._by_scope.get(scope, ()), key=len, reverse=True)

    def redact(self, text: str, scope: str | None) -> str:
        for value in self.values(scope):
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def _drop(self, scope: str, value: str) -> None:
        self._bytes -= self._entries.pop((scope, value))
        values = self._by_scope[scope]
        values.discard(value)
        if not values:
            del self._by_scope[scope]


_redactor = SecretRedactor()


def register_secret(value: str, scope: str) -> None:
    """Mask `value` in later log lines of this process written within `scope` (a sandbox id)."""
    _redactor.register(scope, value)


def forget_secrets(scope: str) -> None:
    _redactor.forget(scope)


@contextmanager
def scoped_redaction(scope: str) -> Iterator[None]:
    """Records written inside (in this task or thread, and the threads it hands work to with
    its context) have the secret values registered for `scope` masked."""
    token = redaction_scope.set(scope)
    try:
        yield
    finally:
        redaction_scope.reset(token)


def redact_text(text: str) -> str:
    if _MAYBE_SECRET.search(text):
        for pattern in _INLINE_PATTERNS:
            if pattern.groups:
                text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
            else:
                text = pattern.sub(REDACTED, text)
    return _redactor.redact(text, redaction_scope.get())


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
