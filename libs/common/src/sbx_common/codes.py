"""The contract's error codes, their HTTP statuses, and the reasons services tell each other.

One table (`HTTP_STATUS`) maps a code to its status: the API's error classes and the
orchestrator's replies name codes from here, so a code the orchestrator sends always has a
status the API can render.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal


class ErrorCode(StrEnum):
    """The `error.code` values of the API contract (its base table and its Additions)."""

    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    INVALID_STATE = "INVALID_STATE"
    NOT_RUNNING = "NOT_RUNNING"
    NOT_A_DIRECTORY = "NOT_A_DIRECTORY"
    IS_A_DIRECTORY = "IS_A_DIRECTORY"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"
    STORAGE_FULL = "STORAGE_FULL"


HTTP_STATUS: Final[dict[ErrorCode, int]] = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.NOT_RUNNING: 409,
    ErrorCode.NOT_A_DIRECTORY: 409,
    ErrorCode.IS_A_DIRECTORY: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.UPSTREAM_UNAVAILABLE: 502,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.STORAGE_FULL: 507,
}

# Codes an orchestrator may put in an exec or terminal reply (`error_code`). INTERNAL_ERROR is
# an exec that failed in the orchestrator itself (a bug on its side): the API renders it, like any
# code it has no error for, as UNAVAILABLE.
RpcErrorCode = Literal[
    "VALIDATION_ERROR",
    "NOT_FOUND",
    "NOT_RUNNING",
    "INVALID_STATE",
    "UNAVAILABLE",
    "INTERNAL_ERROR",
    "QUOTA_EXCEEDED",
    # File operations (sbx.rpc.files and its transfers).
    "CONFLICT",
    "NOT_A_DIRECTORY",
    "IS_A_DIRECTORY",
    "STORAGE_FULL",
    "PAYLOAD_TOO_LARGE",
]

# Why a terminal session ended, sent by the orchestrator in its `exit` control message:
# the shell exited, the sandbox stopped, the client was idle too long, the client went away
# (keepalives stopped), the API closed it, or the shell could not be followed.
TerminalEndReason = Literal["exited", "stopped", "idle", "gone", "closed", "error"]


class CommandReason:
    """`SandboxCommand.reason` of the commands the reaper sends on its own (its `fail` commands
    carry a free-text reason instead)."""

    TTL: Final = "ttl"  # the sandbox's TTL ran out: the orchestrator ends it `expired`
    REPAIR: Final = "repair"  # a user's command published again: not taken up, or stuck


# The reason of a sandbox whose host stopped heartbeating for longer than the grace: the platform
# gave it up (reaper) and its host removes its container when it comes back (orchestrator).
HOST_LOST: Final = "host lost"


class WsClose:
    """WebSocket close codes of the API contract and the RFC 6455 ones the API uses."""

    NORMAL: Final = 1000
    GOING_AWAY: Final = 1001
    POLICY: Final = 1008
    INTERNAL_ERROR: Final = 1011
    TRY_AGAIN_LATER: Final = 1013
    UNAUTHORIZED: Final = 4001
    NOT_FOUND: Final = 4004
    NOT_RUNNING: Final = 4009
    CAP_REACHED: Final = 4029
