"""The sandbox state machine of the API contract."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    EXPIRED = "expired"
    FAILED = "failed"


class Verb(StrEnum):
    CREATE = "create"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    DESTROY = "destroy"
    # Freeze the container's processes (Docker's pause: the cgroup freezer) and thaw them again.
    PAUSE = "pause"
    RESUME = "resume"
    # Issued by the reaper only, never by a user: end a sandbox stuck in a transitional status
    # as `failed` with the command's reason. The orchestrator applies it only if the sandbox is
    # still unsettled when the command arrives, and then takes up the API's latest command.
    FAIL = "fail"
    # Apply the sandbox's recorded network policy (`sandboxes.network`) to its running
    # container. Not a lifecycle step: never recorded as the sandbox's last command, so it leaves
    # the status alone, and it always applies the policy as recorded when it is handled.
    NETWORK = "network"
    # Snapshots and volumes (not lifecycle steps either: never recorded as the sandbox's last
    # command). `snapshot` commits the sandbox's filesystem to the image of the command's
    # `snapshot_id`; `snapshot_delete` removes that image; `volume_delete` unmounts the command's
    # `volume_id` and removes its filesystem image (its `sandbox_id` is then the volume id, so
    # commands on one volume are serialised by the orchestrator's per-id lock).
    SNAPSHOT = "snapshot"
    SNAPSHOT_DELETE = "snapshot_delete"
    VOLUME_DELETE = "volume_delete"


TERMINAL = frozenset({Status.DESTROYED, Status.EXPIRED})
SETTLED = frozenset(
    {Status.RUNNING, Status.STOPPED, Status.PAUSED, Status.DESTROYED, Status.EXPIRED, Status.FAILED}
)
TRANSITIONAL = frozenset(
    {
        Status.PENDING,
        Status.STARTING,
        Status.STOPPING,
        Status.RESTARTING,
        Status.PAUSING,
        Status.RESUMING,
        Status.DESTROYING,
    }
)

# The status a sandbox shows as soon as the API accepts a verb.
TRANSITION_OF = {
    Verb.CREATE: Status.PENDING,
    Verb.START: Status.STARTING,
    Verb.STOP: Status.STOPPING,
    Verb.RESTART: Status.RESTARTING,
    Verb.DESTROY: Status.DESTROYING,
    Verb.PAUSE: Status.PAUSING,
    Verb.RESUME: Status.RESUMING,
}

# From which statuses each user verb is allowed. "start on running" and "stop on stopped" are
# answered as no-ops by the API before this table is consulted.
ALLOWED_FROM: dict[Verb, frozenset[Status]] = {
    Verb.START: frozenset({Status.STOPPED}),
    Verb.STOP: frozenset({Status.RUNNING, Status.STARTING, Status.PENDING, Status.RESTARTING, Status.PAUSED}),
    Verb.RESTART: frozenset({Status.RUNNING, Status.STOPPED}),
    Verb.PAUSE: frozenset({Status.RUNNING}),
    Verb.RESUME: frozenset({Status.PAUSED}),
    Verb.DESTROY: frozenset(set(Status) - TERMINAL - {Status.DESTROYING}),
}

NO_OP: dict[Verb, Status] = {Verb.START: Status.RUNNING, Verb.STOP: Status.STOPPED}


def is_allowed(verb: Verb, current: Status) -> bool:
    return current in ALLOWED_FROM.get(verb, frozenset())
