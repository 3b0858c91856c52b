"""The API's objects as pydantic models: snake_case attributes, camelCase on the wire.

Unknown fields are kept (`extra="allow"`), so an API newer than this SDK loses nothing, and
`to_api()` gives back the object as the API sent it (the same keys, timestamps in the API's own
format). Schemas are built on first use (`defer_build`), which keeps the CLI's start-up short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel


def _rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, as the API writes timestamps."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]

#: Statuses a sandbox settles in: lifecycle calls with `wait=True` return once one is reached.
SETTLED_STATUSES = frozenset({"running", "stopped", "paused", "destroyed", "expired", "failed"})
#: Statuses after which nothing more happens to a sandbox.
TERMINAL_STATUSES = frozenset({"destroyed", "expired"})


class Model(BaseModel):
    """Base of every API object: camelCase aliases, snake_case attributes, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", defer_build=True
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the API's JSON: camelCase keys, only those the API sent (or were set)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class User(Model):
    """An account."""

    id: str
    email: str
    created_at: Timestamp


class ApiKey(Model):
    """An API key as listed (never with the key itself)."""

    id: str
    name: str
    key_prefix: str
    created_at: Timestamp
    last_used_at: Timestamp | None = None
    expires_at: Timestamp | None = None


class CreatedApiKey(Model):
    """A new API key: `key` (`sk_...`) is shown only in this answer."""

    id: str
    name: str
    key_prefix: str
    key: str
    created_at: Timestamp
    expires_at: Timestamp | None = None


class Webhook(Model):
    """A webhook as listed (never with its secret)."""

    id: str
    url: str
    events: list[str]
    description: str | None = None
    created_at: Timestamp


class CreatedWebhook(Webhook):
    """A new webhook: `secret` (checks `Sbx-Signature`, see `verify_webhook`) is shown only here."""

    secret: str


class WebhookDelivery(Model):
    """One event's delivery to a webhook: `delivered`, `retrying` or `failed`, with its attempts."""

    id: str
    event_id: str
    status: str
    attempts: int
    response_status: int | None = None
    last_attempt_at: Timestamp | None = None


class Port(Model):
    """A container port of an environment; `host` None means a free host port per sandbox."""

    container: int
    host: int | None = None


class NetworkPolicy(Model):
    """What a sandbox may reach: `egress` "internet" (default), "none" or "allowlist" (only the
    `allow` entries: IPv4 CIDRs and hostnames). Other sandboxes, the host, the platform's
    services and link-local addresses are out of reach whatever the policy."""

    egress: str = "internet"
    allow: list[str] = Field(default_factory=list)


class Secret(Model):
    """A secret of an environment: its key and when it was set (never the value)."""

    key: str
    updated_at: Timestamp


class EnvironmentVersion(Model):
    """One immutable version of an environment's definition."""

    version: int
    image: str
    cpu: float
    memory: int
    ports: list[Port] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    network: NetworkPolicy = Field(default_factory=NetworkPolicy)
    runtime: str = "runc"
    disk: int | None = None
    warm_pool: int = 0
    created_at: Timestamp


class PreviewUrl(Model):
    """A signed link to one port of a sandbox that a browser opens with no other credential,
    until `expires_at` or until the sandbox is destroyed."""

    url: str
    expires_at: Timestamp


class Snapshot(Model):
    """A sandbox's filesystem kept as an image: `status` is `creating`, then `ready` or `failed`."""

    id: str
    name: str
    sandbox_id: str
    environment_id: str
    environment_version: int
    status: str
    status_reason: str | None = None
    size_bytes: int = 0
    created_at: Timestamp


class Volume(Model):
    """Named storage that outlives sandboxes; `size_mib` is a hard limit inside the sandbox."""

    id: str
    name: str
    size_mib: int = Field(alias="sizeMiB")
    used_bytes: int = 0
    created_at: Timestamp
    attached_to: list[str] = Field(default_factory=list)


class VolumeMount(Model):
    """A volume mounted into a sandbox at `mount_path` (absolute), read-write unless `read_only`."""

    volume_id: str
    mount_path: str
    read_only: bool = False


class Environment(Model):
    """An environment at its current version: image, limits (`cpu` cores, `memory` MiB, `disk`
    MiB of writable filesystem), container `runtime`, ports, plain `env`, `command`, and the keys
    of its secrets."""

    id: str
    name: str
    version: int
    image: str
    cpu: float
    memory: int
    ports: list[Port] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    network: NetworkPolicy = Field(default_factory=NetworkPolicy)
    runtime: str = "runc"
    disk: int | None = None
    warm_pool: int = 0
    secrets: list[Secret] = Field(default_factory=list)
    created_at: Timestamp
    updated_at: Timestamp


class Endpoint(Model):
    """A published port of a sandbox."""

    container_port: int
    host_port: int | None = None
    url: str | None = None


S = TypeVar("S", bound="SandboxInfo")


def wanted_statuses(status: str | Sequence[str] | None) -> frozenset[str]:
    """The statuses a wait ends on: the ones given, else the settled ones."""
    if status is None:
        return SETTLED_STATUSES
    return frozenset([status] if isinstance(status, str) else status)


class SandboxInfo(Model):
    """A sandbox's fields; `Sandbox` and `AsyncSandbox` add the methods that act on it."""

    id: str
    name: str
    environment_id: str
    environment_version: int
    status: str
    status_reason: str | None = None
    image: str
    cpu: float
    memory: int
    runtime: str = "runc"
    disk: int | None = None
    env: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    endpoints: list[Endpoint] = Field(default_factory=list)
    network: NetworkPolicy = Field(default_factory=NetworkPolicy)
    created_at: Timestamp
    started_at: Timestamp | None = None
    stopped_at: Timestamp | None = None
    # None once a TTL stop or pause has spent it (until `update(ttl_seconds=...)`).
    expires_at: Timestamp | None = None
    destroyed_at: Timestamp | None = None
    on_expire: str = "destroy"  # what the TTL does: "destroy", "stop" or "pause"
    host_id: str = "local"  # the Docker host it was placed on (it never moves)

    @property
    def settled(self) -> bool:
        """True when the sandbox is in a status it stays in until acted on."""
        return self.status in SETTLED_STATUSES

    def _assign(self: S, data: Mapping[str, Any]) -> S:
        """Take the fields of a newer answer about the same sandbox (the object is updated in place)."""
        fresh = SandboxInfo.model_validate(data)
        for name in SandboxInfo.model_fields:
            setattr(self, name, getattr(fresh, name))
        self.__pydantic_extra__ = fresh.__pydantic_extra__
        return self


class ExecResult(Model):
    """What a command run by `exec` did; `exit_code` is None when it timed out."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool
    truncated: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class FileEntry(Model):
    """A path in a sandbox: `type` is "file", "dir", "symlink" or "other"; `mode` like "0644"."""

    name: str
    path: str
    type: str
    size: int
    mode: str
    modified_at: Timestamp | None = None


class FileChange(Model):
    """One change seen by `files.watch`: `type` is "created", "modified", "deleted", "moved"
    (`from_path` the old path) or "overflow" (changes were dropped: list the directory again)."""

    type: str
    path: str | None = None
    from_path: str | None = None
    is_dir: bool = False
    timestamp: Timestamp | None = None


class ArchiveResult(Model):
    """What an archive upload extracted: the directory and how many entries."""

    path: str
    entries: int


class UploadResult(Model):
    """What an upload wrote: the path and its size in bytes."""

    path: str
    size: int


class LogLine(Model):
    """One line a sandbox printed; `seq` grows by one per line of that sandbox."""

    seq: int
    stream: str
    text: str
    timestamp: Timestamp


class Event(Model):
    """A sandbox's change of status; `id` resumes a stream right after it."""

    id: str
    type: str
    sandbox_id: str
    status: str
    occurred_at: Timestamp
    data: dict[str, Any] = Field(default_factory=dict)


class CpuUsage(Model):
    """CPU use: percent of one core (can pass 100 with several cores) and the cores allowed."""

    usage_percent: float
    cores: float


class MemoryUsage(Model):
    """Memory use against the sandbox's limit."""

    usage_bytes: int
    limit_bytes: int
    usage_percent: float


class NetworkUsage(Model):
    """Network counters since the container started."""

    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


class IoUsage(Model):
    """Block I/O counters since the container started."""

    read_bytes: int
    write_bytes: int


class Metrics(Model):
    """The latest resource sample of a running sandbox."""

    cpu: CpuUsage
    memory: MemoryUsage
    network: NetworkUsage
    io: IoUsage
    pids: int
    timestamp: Timestamp


class AuditEvent(Model):
    """An entry of the caller's audit trail (what was done with the account, refusals too)."""

    id: str
    action: str
    target_type: str | None = None
    target_id: str | None = None
    outcome: str
    trace_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    occurred_at: Timestamp


class InfoLimits(Model):
    """Limits of an installation (`GET /info`); unknown ones are kept as extra fields."""

    max_body_bytes: int | None = None
    default_disk_mib: int | None = None
    min_disk_mib: int | None = None
    max_disk_mib: int | None = None
    max_sandboxes_per_user: int | None = None
    max_environments_per_user: int | None = None


class Info(Model):
    """`GET /info`: what this installation offers: its version, the container `runtimes` an
    environment may ask for, optional `features`, `limits`, and how `disk` holds (`disk_limit`:
    `quota` writes past it fail, `watch` the sandbox is stopped)."""

    version: str
    runtimes: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    limits: InfoLimits = Field(default_factory=InfoLimits)
    disk_limit: str | None = None


class Health(Model):
    """`GET /health`: `status` is `ok` or `degraded`; each dependency `ok` or `down`."""

    status: str
    db: str
    nats: str
    docker: str
    timestamp: Timestamp


#: Statuses of a background process once it has ended.
PROCESS_ENDED_STATUSES = frozenset({"exited", "killed"})


class ProcessInfo(Model):
    """A background process: `status` "running", "exited" or "killed" (by its timeout, or its
    sandbox stopping); `pid` is its id inside the sandbox; `exit_signal` (the API's `signal`) the
    signal that ended it."""

    id: str
    sandbox_id: str
    command: list[str]
    pid: int | None = None
    tty: bool = False
    status: str
    exit_code: int | None = None
    exit_signal: str | None = Field(default=None, alias="signal")
    started_at: Timestamp
    ended_at: Timestamp | None = None

    @property
    def ended(self) -> bool:
        return self.status in PROCESS_ENDED_STATUSES


class OutputChunk(Model):
    """A piece of a process's output, numbered per process (`seq` 1, 2, ... without gaps):
    `text`, or with `encoding="base64"` the exact bytes in `data`."""

    seq: int
    stream: str
    text: str | None = None
    data: str | None = None
    timestamp: Timestamp

    def content(self) -> bytes:
        """The chunk's bytes (exact with `encoding="base64"`)."""
        import base64

        return base64.b64decode(self.data) if self.data is not None else (self.text or "").encode()


class ProcessOutput(Model):
    """A page of kept output: `data` after the `since` asked, `next_since` for the next call,
    `truncated_before` the oldest seq still kept when older output was dropped."""

    data: list[OutputChunk]
    next_since: int
    truncated_before: int | None = None
