"""How a command attempt ends when it does not succeed.

`SandboxFailed` is a final answer (the image does not exist, the container exited, it never
became healthy...): the sandbox becomes `failed` with the reason and the command is acknowledged,
because trying again cannot help. Any other exception is treated as temporary (Docker, NATS or
PostgreSQL hiccup): the command is retried with a delay, and given up after its last delivery.
"""

from __future__ import annotations

from typing import Any


class SandboxFailed(Exception):
    """The command cannot succeed; `reason` is shown to the user as `statusReason`."""

    def __init__(
        self, reason: str, *, exit_code: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.data = data or {}
