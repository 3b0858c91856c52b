"""Docker labels on every sandbox container: how the platform finds its own containers."""

from __future__ import annotations

PLATFORM = "sbx.platform"
PLATFORM_VALUE = "sandbox-platform"
INSTANCE = "sbx.instance"
SANDBOX_ID = "sbx.sandbox-id"
OWNER_ID = "sbx.owner-id"
# A network holder (a container whose network namespace one sandbox's container joins; see the
# orchestrator's network_holders.py) carries these instead of INSTANCE and SANDBOX_ID: listings of
# an installation's sandbox containers never see it.
HOLDER_INSTANCE = "sbx.holder-instance"
HOLDER_HOST = "sbx.holder-host"


def container_name(sandbox_id: object) -> str:
    return f"sbx-{sandbox_id}"


SNAPSHOT_ID = "sbx.snapshot-id"


def snapshot_image(snapshot_id: object) -> str:
    """The platform's image of a snapshot (one repository per snapshot, tag `latest`)."""
    return f"sbx-snapshot-{snapshot_id}:latest"


def instance_filter(instance: str) -> list[str]:
    """Docker's `label` filter for this installation's sandbox containers (the labels must all
    match), so no service ever lists or touches another installation's containers."""
    return [f"{PLATFORM}={PLATFORM_VALUE}", f"{INSTANCE}={instance}"]
