"""Request and response bodies of the sandboxes domain.

Limits that the contract leaves open (documented in the OpenAPI schema through these models):
- `env` (create, replicate, exec): the environments' rules (at most 128 variables, names
  `^[A-Za-z_][A-Za-z0-9_]*$`, values up to 32 KiB without NUL).
- `metadata`: at most 32 entries; keys 1-63 characters of `A-Z a-z 0-9 . _ / -` starting with a
  letter or digit; values up to 256 characters.
- `name`: 1-128 printable characters; defaults to `<environment name>-<8 hex>`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator
from sbx_common.errors import ValidationFailed

from sbx_api.environments.schemas import EnvMap, NetworkPolicyOut
from sbx_api.schemas import ApiModel, RequestModel, Timestamp

TTL_MIN = 10
TTL_MAX = 604_800
TTL_DEFAULT = 3600
MAX_METADATA_ENTRIES = 32
EXEC_TIMEOUT_DEFAULT = 30.0
EXEC_TIMEOUT_MAX = 300.0

MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")]
MetadataValue = Annotated[str, StringConstraints(max_length=256)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_ENTRIES)]
SandboxName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
TtlSeconds = Annotated[int, Field(ge=TTL_MIN, le=TTL_MAX, strict=True)]
# What the reaper does when the TTL runs out: destroy (status `expired`), or stop / pause (status
# `stopped` / `paused` with reason "ttl", and no `expiresAt` until a PATCH sets a new TTL).
OnExpire = Literal["destroy", "stop", "pause"]


MAX_VOLUME_MOUNTS = 16
# Where no volume may go: the kernel's and the devices' file systems, and the root itself.
_RESERVED_MOUNT_PATHS = ("/proc", "/sys", "/dev")


class VolumeMountIn(RequestModel):
    """One of the caller's volumes, mounted at `mountPath` (absolute, not `/` nor under `/proc`,
    `/sys`, `/dev`; no `..`, `:` or `,`), read-write unless `readOnly`."""

    volume_id: uuid.UUID
    mount_path: Annotated[str, StringConstraints(min_length=2, max_length=1024)]
    read_only: bool = False

    @field_validator("mount_path")
    @classmethod
    def _platform_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        parts = [p for p in value.split("/") if p]
        if not parts:
            raise ValueError("must not be the root directory")
        if (
            any(p in (".", "..") for p in parts)
            or any(c in value for c in ":,\\")
            or any(ord(c) < 0x20 for c in value)
        ):
            raise ValueError("must be a plain absolute path (no '.', '..', ':', ',' or control characters)")
        normal = "/" + "/".join(parts)
        if any(normal == r or normal.startswith(r + "/") for r in _RESERVED_MOUNT_PATHS):
            raise ValueError("must not be under /proc, /sys or /dev")
        return normal


VolumeMounts = Annotated[list[VolumeMountIn], Field(max_length=MAX_VOLUME_MOUNTS)]


def _distinct_paths(mounts: list[VolumeMountIn]) -> None:
    paths = [m.mount_path for m in mounts]
    if len(set(paths)) != len(paths):
        raise ValidationFailed.for_field("volumes", "Two volumes on one mountPath.")


class CreateSandboxRequest(RequestModel):
    """From an environment (`environmentId`, its current version unless one is named) or from a
    snapshot (`snapshotId`: the snapshot's files with its environment version's settings)."""

    environment_id: uuid.UUID | None = None
    environment_version: Annotated[int, Field(ge=1, strict=True)] | None = None
    snapshot_id: uuid.UUID | None = None
    name: SandboxName | None = None
    ttl_seconds: TtlSeconds = TTL_DEFAULT
    env: EnvMap = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    volumes: VolumeMounts = Field(default_factory=list)
    on_expire: OnExpire = "destroy"

    def check(self) -> None:
        """What one field cannot say alone (400 `VALIDATION_ERROR` naming the field)."""
        if (self.environment_id is None) == (self.snapshot_id is None):
            raise ValidationFailed.for_field("environmentId", "Give either environmentId or snapshotId.")
        if self.snapshot_id is not None and self.environment_version is not None:
            raise ValidationFailed.for_field(
                "environmentVersion", "Not with snapshotId (the snapshot's version is used)."
            )
        _distinct_paths(self.volumes)


class UpdateSandboxRequest(RequestModel):
    """`ttlSeconds` counts from now; `metadata` replaces the sandbox's metadata as a whole;
    `onExpire` applies from now on. A field left out is left as it is."""

    ttl_seconds: TtlSeconds | None = None
    metadata: Metadata | None = None
    on_expire: OnExpire | None = None


class ReplicateSandboxRequest(RequestModel):
    """The copy keeps the source's environment version and env (overrides merged over it). Its
    name, TTL and metadata are its own: left out, the name is `<source name>-<8 hex>`, the TTL the
    source's `ttlSeconds` (counted from the copy's creation) and the metadata empty."""

    name: SandboxName | None = None
    ttl_seconds: TtlSeconds | None = None
    env: EnvMap = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    # The copy starts with the source's files as they are now (a snapshot taken for it).
    with_filesystem: bool = False
    # Volumes are not copied: the copy mounts the ones named here.
    volumes: VolumeMounts = Field(default_factory=list)

    def check(self) -> None:
        _distinct_paths(self.volumes)


class ExecRequestBody(RequestModel):
    """`command` as a string runs through `sh -c`; as a list it runs as is (no shell)."""

    command: (
        Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]
        | Annotated[
            list[Annotated[str, StringConstraints(max_length=64 * 1024)]],
            Field(min_length=1, max_length=4096),
        ]
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=EXEC_TIMEOUT_MAX)] = EXEC_TIMEOUT_DEFAULT
    env: EnvMap = Field(default_factory=dict)
    workdir: Annotated[str, StringConstraints(pattern=r"^/", max_length=4096)] | None = None

    @field_validator("command")
    @classmethod
    def _program_named(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value[0]:
            raise ValueError("the first element (the program) must not be empty")
        if isinstance(value, str) and not value.strip():
            raise ValueError("the command must not be blank")
        return value

    def argv(self) -> list[str]:
        return ["sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)


class Endpoint(ApiModel):
    container_port: int
    host_port: int | None
    url: str | None


class SandboxOut(ApiModel):
    id: uuid.UUID
    name: str
    environment_id: uuid.UUID
    environment_version: int
    status: str
    status_reason: str | None
    image: str
    cpu: float
    memory: int
    runtime: str = Field(description="Container runtime of its environment version (`runc`, `gvisor`).")
    disk: int = Field(description="MiB of writable filesystem.")
    env: dict[str, str]
    metadata: dict[str, str]
    endpoints: list[Endpoint]
    network: NetworkPolicyOut
    created_at: Timestamp
    started_at: Timestamp | None
    stopped_at: Timestamp | None
    # None once a TTL stop or pause has spent it (until a PATCH sets a new TTL).
    expires_at: Timestamp | None
    destroyed_at: Timestamp | None
    on_expire: str
    host_id: str = Field(
        description=(
            "The Docker host the sandbox was placed on at create (it never moves): the installation's"
            " `SBX_HOST_ID` of that host, `local` on a single-host installation. A sandbox whose host"
            " stopped answering for longer than the grace is `failed` with `statusReason` `host lost`."
        )
    )


class ExecOut(ApiModel):
    """`stdout`/`stderr` are capped by the orchestrator; the `*Truncated` flags (and `truncated`,
    true when either is) say when output was cut."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool
    truncated: bool
    stdout_truncated: bool
    stderr_truncated: bool


class LogLineOut(ApiModel):
    seq: int
    stream: str
    text: str
    timestamp: Timestamp


class CpuSample(ApiModel):
    usage_percent: float
    cores: float


class MemorySample(ApiModel):
    usage_bytes: int
    limit_bytes: int
    usage_percent: float


class NetworkSample(ApiModel):
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


class IoSample(ApiModel):
    read_bytes: int
    write_bytes: int


class MetricsOut(ApiModel):
    cpu: CpuSample
    memory: MemorySample
    network: NetworkSample
    io: IoSample
    pids: int
    timestamp: str
