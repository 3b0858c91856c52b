"""Typed errors: one class per error code of the API contract, raised by every client call.

`SandboxPlatformError` carries what the API said (`code`, `status`, `message`, `details`); the
subclasses let callers catch one case (`except NotRunningError:`) without comparing strings.
WebSocket close codes map onto the same classes (4001 -> `UnauthorizedError`, 4004 ->
`NotFoundError`, 4009 -> `NotRunningError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SandboxPlatformError(Exception):
    """An error answered by the API (or met on the way to it); `code` is the contract's code."""

    def __init__(
        self,
        code: str,
        status: int | None,
        message: str,
        details: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.trace_id = trace_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class ValidationError(SandboxPlatformError):
    """400 `VALIDATION_ERROR`: the request was malformed; `details["errors"]` names the fields."""

    @property
    def errors(self) -> list[dict[str, str]]:
        """The `[{path, message}]` list of the fields that were refused."""
        errors = self.details.get("errors")
        return list(errors) if isinstance(errors, list) else []


class UnauthorizedError(SandboxPlatformError):
    """401 `UNAUTHORIZED`: credentials missing, malformed, expired or revoked."""


class NotFoundError(SandboxPlatformError):
    """404 `NOT_FOUND`: no such resource (or not the caller's)."""


class ConflictError(SandboxPlatformError):
    """409 `CONFLICT`: a duplicate, or a resource still in use."""


class InvalidStateError(SandboxPlatformError):
    """409 `INVALID_STATE`: the lifecycle action is not allowed from the sandbox's status."""


class NotRunningError(SandboxPlatformError):
    """409 `NOT_RUNNING`: exec, terminal or metrics on a sandbox that is not running."""


class PayloadTooLargeError(SandboxPlatformError):
    """413 `PAYLOAD_TOO_LARGE`: the request body is over the API's limit."""


class PathNotADirectoryError(SandboxPlatformError):
    """409 `NOT_A_DIRECTORY`: a file route was given a path that is not a directory."""


class PathIsADirectoryError(SandboxPlatformError):
    """409 `IS_A_DIRECTORY`: a file route was given a directory where it needs a file."""


class StorageFullError(SandboxPlatformError):
    """507 `STORAGE_FULL`: the sandbox's disk or volume is full; the upload left nothing behind."""


class QuotaExceededError(SandboxPlatformError):
    """429 `QUOTA_EXCEEDED`: a per-user quota is reached; retrying does not help."""


class RateLimitedError(SandboxPlatformError):
    """429 `RATE_LIMITED`: too many requests; `retry_after` says how many seconds to wait."""

    def __init__(
        self,
        code: str,
        status: int | None,
        message: str,
        details: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, status, message, details, trace_id)
        if retry_after is None:
            raw = self.details.get("retryAfter")
            retry_after = float(raw) if isinstance(raw, int | float) else None
        self.retry_after = retry_after


class UnavailableError(SandboxPlatformError):
    """503 `UNAVAILABLE`: a dependency of the platform is down; the request changed nothing."""


class UpstreamUnavailableError(SandboxPlatformError):
    """502 `UPSTREAM_UNAVAILABLE`: nothing answers on the sandbox port a proxied request went to."""


class InternalServerError(SandboxPlatformError):
    """500 `INTERNAL_ERROR` (or another 5xx): a bug on the server; `trace_id` finds its log."""


class APIConnectionError(SandboxPlatformError):
    """The API could not be reached (or the connection broke) and retries did not help."""

    def __init__(self, message: str, code: str = "CONNECTION_ERROR") -> None:
        super().__init__(code, None, message)


class APITimeoutError(APIConnectionError):
    """The API did not answer in time."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="TIMEOUT")


ERRORS_BY_CODE: dict[str, type[SandboxPlatformError]] = {
    "VALIDATION_ERROR": ValidationError,
    "UNAUTHORIZED": UnauthorizedError,
    "NOT_FOUND": NotFoundError,
    "CONFLICT": ConflictError,
    "INVALID_STATE": InvalidStateError,
    "NOT_RUNNING": NotRunningError,
    "PAYLOAD_TOO_LARGE": PayloadTooLargeError,
    "NOT_A_DIRECTORY": PathNotADirectoryError,
    "IS_A_DIRECTORY": PathIsADirectoryError,
    "STORAGE_FULL": StorageFullError,
    "QUOTA_EXCEEDED": QuotaExceededError,
    "RATE_LIMITED": RateLimitedError,
    "UNAVAILABLE": UnavailableError,
    "UPSTREAM_UNAVAILABLE": UpstreamUnavailableError,
    "INTERNAL_ERROR": InternalServerError,
}

# For answers without the contract's envelope (a proxy's page, a framework error).
_CODES_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
    507: "STORAGE_FULL",
}

# WebSocket close codes of the contract, and the error code each stands for.
_CLOSE_CODES: dict[int, str] = {
    1008: "VALIDATION_ERROR",
    1011: "UNAVAILABLE",
    1014: "UPSTREAM_UNAVAILABLE",  # the port proxy: nothing accepts a WebSocket on that port
    4001: "UNAUTHORIZED",
    4004: "NOT_FOUND",
    4009: "NOT_RUNNING",
    4029: "QUOTA_EXCEEDED",
}


def error_for(
    code: str,
    status: int | None,
    message: str,
    details: Mapping[str, Any] | None = None,
    trace_id: str | None = None,
    *,
    retry_after: float | None = None,
) -> SandboxPlatformError:
    """The error object for a contract code (the base class for a code this SDK does not know)."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is RateLimitedError:
        return RateLimitedError(code, status, message, details, trace_id, retry_after=retry_after)
    if cls is None:
        cls = InternalServerError if status is not None and status >= 500 else SandboxPlatformError
    return cls(code, status, message, details, trace_id)


def error_from_body(
    status: int, body: Any, trace_id: str | None = None, retry_after: float | None = None
) -> SandboxPlatformError:
    """The error an HTTP answer carries: the contract's envelope, or one made from the status."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        details = error.get("details")
        return error_for(
            error["code"],
            status,
            str(error.get("message") or error["code"]),
            details if isinstance(details, dict) else None,
            trace_id,
            retry_after=retry_after,
        )
    code = _CODES_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else f"HTTP_{status}")
    return error_for(
        code, status, f"The API answered HTTP {status}.", None, trace_id, retry_after=retry_after
    )


def error_from_close(code: int, reason: str) -> SandboxPlatformError:
    """The error a WebSocket close code stands for."""
    name = _CLOSE_CODES.get(code, "INTERNAL_ERROR")
    return error_for(name, None, reason or f"The socket was closed with code {code}.", {"closeCode": code})
