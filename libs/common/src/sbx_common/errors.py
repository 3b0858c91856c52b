"""The platform's error hierarchy: each error knows its HTTP status and contract code."""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    """Base of every error the API renders as `{"success": false, "error": {...}}`."""

    status_code = 500
    code = "INTERNAL_ERROR"
    default_message = "An internal error occurred."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"success": False, "error": error}


class ValidationFailed(PlatformError):
    status_code = 400
    code = "VALIDATION_ERROR"
    default_message = "The request is not valid."

    @classmethod
    def for_field(cls, path: str, message: str) -> ValidationFailed:
        return cls(details={"errors": [{"path": path, "message": message}]})


class Unauthorized(PlatformError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Missing or invalid credentials."


class NotFound(PlatformError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "The resource was not found."


class Conflict(PlatformError):
    status_code = 409
    code = "CONFLICT"
    default_message = "The request conflicts with the current state."


class InvalidState(PlatformError):
    status_code = 409
    code = "INVALID_STATE"
    default_message = "This action is not allowed in the sandbox's current status."


class NotRunning(PlatformError):
    status_code = 409
    code = "NOT_RUNNING"
    default_message = "The sandbox is not running."


class PayloadTooLarge(PlatformError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body is too large."


class QuotaExceeded(PlatformError):
    status_code = 429
    code = "QUOTA_EXCEEDED"
    default_message = "A quota was reached."


class RateLimited(PlatformError):
    status_code = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, {"retryAfter": retry_after})


class Unavailable(PlatformError):
    status_code = 503
    code = "UNAVAILABLE"
    default_message = "A dependency is unavailable; nothing was changed."


class RecordedForLater(Unavailable):
    """503, but the change is recorded and will be carried out: a retry must not act again."""

    default_message = "A dependency is unavailable; the request is recorded and will be carried out later."


class InternalError(PlatformError):
    """A bug. The message stays generic; the log carries the trace id and the cause."""
