"""The platform's error hierarchy: each error has a contract code, and its HTTP status is that
code's entry in `codes.HTTP_STATUS`, the one table mapping codes to statuses."""

from __future__ import annotations

from typing import Any, ClassVar

from sbx_common.codes import HTTP_STATUS, ErrorCode


class PlatformError(Exception):
    """Base of every error the API renders as `{"success": false, "error": {...}}`."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR
    status_code: ClassVar[int] = HTTP_STATUS[ErrorCode.INTERNAL_ERROR]
    default_message: ClassVar[str] = "An internal error occurred."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status_code = HTTP_STATUS[cls.code]

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"success": False, "error": error}


class ValidationFailed(PlatformError):
    code = ErrorCode.VALIDATION_ERROR
    default_message = "The request is not valid."

    @classmethod
    def for_field(cls, path: str, message: str) -> ValidationFailed:
        return cls(details={"errors": [{"path": path, "message": message}]})


class Unauthorized(PlatformError):
    code = ErrorCode.UNAUTHORIZED
    default_message = "Missing or invalid credentials."


class NotFound(PlatformError):
    code = ErrorCode.NOT_FOUND
    default_message = "The resource was not found."


class Conflict(PlatformError):
    code = ErrorCode.CONFLICT
    default_message = "The request conflicts with the current state."


class InvalidState(PlatformError):
    code = ErrorCode.INVALID_STATE
    default_message = "This action is not allowed in the sandbox's current status."


class NotRunning(PlatformError):
    code = ErrorCode.NOT_RUNNING
    default_message = "The sandbox is not running."


class NotADirectory(PlatformError):
    code = ErrorCode.NOT_A_DIRECTORY
    default_message = "The path is not a directory."


class IsADirectory(PlatformError):
    code = ErrorCode.IS_A_DIRECTORY
    default_message = "The path is a directory."


class PayloadTooLarge(PlatformError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    default_message = "The request body is too large."


class QuotaExceeded(PlatformError):
    code = ErrorCode.QUOTA_EXCEEDED
    default_message = "A quota was reached."


class RateLimited(PlatformError):
    code = ErrorCode.RATE_LIMITED
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, {"retryAfter": retry_after})


class UpstreamUnavailable(PlatformError):
    """502: a service the request depends on answered, but not usefully."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE
    default_message = "An upstream service failed to answer the request."


class Unavailable(PlatformError):
    code = ErrorCode.UNAVAILABLE
    default_message = "A dependency is unavailable; nothing was changed."


class RecordedForLater(Unavailable):
    """503, but the change is recorded and will be carried out: a retry must not act again."""

    default_message = "A dependency is unavailable; the request is recorded and will be carried out later."


class StorageFull(PlatformError):
    code = ErrorCode.STORAGE_FULL
    default_message = "The sandbox's storage is full."


class InternalError(PlatformError):
    """A bug. The message stays generic; the log carries the trace id and the cause."""
