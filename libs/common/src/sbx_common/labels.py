"""Docker labels on every sandbox container: how the platform finds its own containers."""

from __future__ import annotations

PLATFORM = "sbx.platform"
PLATFORM_VALUE = "sandbox-platform"
INSTANCE = "sbx.instance"
SANDBOX_ID = "sbx.sandbox-id"
OWNER_ID = "sbx.owner-id"


def container_name(sandbox_id: object) -> str:
    return f"sbx-{sandbox_id}"
