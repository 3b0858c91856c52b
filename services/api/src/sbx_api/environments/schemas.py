"""Request and response bodies of environments, their versions and their secrets.

Limits checked here, so that a bad definition is a 400 at the API and never a failure later in
the orchestrator: CPU (cores, at least Docker's 0.01 and at most the host's cores), memory
(16 MiB to 64 GiB), ports (container 1-65535, host 1024-65535, no duplicates), env names,
a non-empty command, and an image reference Docker accepts. No validation message ever
contains the value it refers to (secret values in particular).
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainSerializer, StringConstraints, field_validator
from sbx_common.network import MAX_ALLOW, Egress, check_allow_entry

from sbx_api.schemas import ApiModel, RequestModel, Timestamp

MIN_CPU = 0.01  # Docker's smallest NanoCpus quota; below it a limit would silently mean "none"
MIN_MEMORY_MIB = 16
MAX_MEMORY_MIB = 65536
MAX_PORTS = 64
MAX_ENV_ENTRIES = 128
MAX_ENV_VALUE_CHARS = 32768
MAX_COMMAND_ARGS = 256
MAX_COMMAND_ARG_CHARS = 8192
MAX_SECRET_VALUE_BYTES = 64 * 1024
MAX_SECRETS_PER_ENVIRONMENT = 100
MIN_DISK_MIB = 64
MAX_DISK_MIB = 102400

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SECRET_KEY_PATTERN = r"^[A-Z_][A-Z0-9_]*$"  # noqa: S105 (a pattern, not a secret)
ENVIRONMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

# Docker's reference grammar (distribution/reference), simplified: [registry[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?/)"
_IMAGE = re.compile(
    rf"^{_REGISTRY}?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)


def check_image(value: str) -> str:
    if len(value) > 255 or not _IMAGE.match(value):
        raise ValueError("Enter an image reference such as `nginx:alpine` or `ghcr.io/team/app:1.2`.")
    return value


def check_cpu(value: float) -> float:
    cores = os.cpu_count() or 1
    if value < MIN_CPU:
        raise ValueError(f"cpu must be at least {MIN_CPU} cores.")
    if value > cores:
        raise ValueError(f"cpu must be at most {cores} (the host's cores).")
    return value


def check_no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("The value must not contain NUL characters.")
    return value


def check_secret_value(value: str) -> str:
    if len(value.encode()) > MAX_SECRET_VALUE_BYTES:
        raise ValueError(f"The value must be at most {MAX_SECRET_VALUE_BYTES} bytes (UTF-8).")
    return check_no_nul(value)


ImageRef = Annotated[str, Field(strict=True, min_length=1), AfterValidator(check_image)]
Cpu = Annotated[
    float, Field(strict=True, allow_inf_nan=False, description="Cores."), AfterValidator(check_cpu)
]
MemoryMiB = Annotated[int, Field(strict=True, ge=MIN_MEMORY_MIB, le=MAX_MEMORY_MIB, description="MiB.")]
# Which runtimes exist is up to the engine (see /info); the name is checked by the service.
RuntimeName = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9-]*$"),
    Field(description="Container runtime: `runc` (default) or `gvisor`, as `GET /info` lists them."),
]
DiskMiB = Annotated[
    int,
    Field(
        strict=True,
        ge=MIN_DISK_MIB,
        le=MAX_DISK_MIB,
        description="MiB of writable filesystem per sandbox (default: SBX_DEFAULT_DISK_MB).",
    ),
]
# How many ready sandboxes of the version the orchestrator keeps waiting (docs/warm-pools.md).
MAX_WARM_POOL = 20
WarmPool = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_WARM_POOL,
        description="Ready sandboxes of this version kept waiting so a create without `env` or `volumes`"
        " is served at once (0-20, default 0). They count against the owner's quotas.",
    ),
]
EnvName = Annotated[str, StringConstraints(strict=True, pattern=ENV_NAME_PATTERN, max_length=256)]
EnvValue = Annotated[str, Field(strict=True, max_length=MAX_ENV_VALUE_CHARS), AfterValidator(check_no_nul)]
EnvMap = Annotated[dict[EnvName, EnvValue], Field(max_length=MAX_ENV_ENTRIES)]
CommandArg = Annotated[
    str, Field(strict=True, max_length=MAX_COMMAND_ARG_CHARS), AfterValidator(check_no_nul)
]
Command = Annotated[list[CommandArg], Field(min_length=1, max_length=MAX_COMMAND_ARGS)]
EnvironmentName = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=ENVIRONMENT_NAME_PATTERN)
]
SecretKey = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=256, pattern=SECRET_KEY_PATTERN)
]


class PortSpec(RequestModel):
    """A container port; `host` omitted means a free host port is chosen per sandbox."""

    container: int = Field(strict=True, ge=1, le=65535)
    host: int | None = Field(default=None, strict=True, ge=1024, le=65535)


def check_ports(ports: list[PortSpec]) -> list[PortSpec]:
    containers = [p.container for p in ports]
    if len(set(containers)) != len(containers):
        raise ValueError("Each container port may appear only once.")
    hosts = [p.host for p in ports if p.host is not None]
    if len(set(hosts)) != len(hosts):
        raise ValueError("Each host port may appear only once.")
    return ports


Ports = Annotated[list[PortSpec], Field(max_length=MAX_PORTS), AfterValidator(check_ports)]


def dump_ports(ports: list[PortSpec]) -> list[dict[str, int]]:
    return [p.model_dump(exclude_none=True) for p in ports]


AllowEntry = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=253), AfterValidator(check_allow_entry)
]


class NetworkPolicyIn(RequestModel):
    """What a sandbox may reach. Whatever the egress, it never reaches other sandboxes, the host,
    the platform's services, link-local addresses (the cloud metadata address), private ranges or
    the operator's `SBX_EGRESS_DENY`; replies to its published ports always flow.

    `internet`: everything else. `none`: nothing at all (not even DNS). `allowlist`: DNS and the
    `allow` entries only: IPv4 CIDRs or addresses, and hostnames (resolved on the host when the
    policy is applied and again every `SBX_EGRESS_REFRESH_SECONDS`; the addresses of the DNS
    answers are let through). At most 64 entries."""

    egress: Egress = Field(default=Egress.INTERNET, examples=["allowlist"])
    allow: Annotated[list[AllowEntry], Field(max_length=MAX_ALLOW)] = Field(
        default_factory=list, examples=[["203.0.113.0/24", "pypi.org"]]
    )

    def stored(self) -> dict[str, Any]:
        # Entries deduplicated, order kept.
        return {"egress": self.egress.value, "allow": list(dict.fromkeys(self.allow))}


class NetworkPolicyOut(ApiModel):
    egress: Egress
    allow: list[str]


def default_network() -> NetworkPolicyIn:
    return NetworkPolicyIn()


class CreateEnvironmentRequest(RequestModel):
    name: EnvironmentName = Field(examples=["nginx-demo"])
    image: ImageRef = Field(examples=["nginx:alpine"])
    cpu: Cpu = 1.0
    memory: MemoryMiB = 256
    ports: Ports = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    command: Command | None = None
    network: NetworkPolicyIn = Field(default_factory=default_network)
    runtime: RuntimeName = "runc"
    disk: DiskMiB | None = None
    warm_pool: WarmPool = 0


class UpdateEnvironmentRequest(RequestModel):
    """Any subset of the definition; what is left out is carried over from the current version.

    `command: null` clears the command; the other fields cannot be null.
    """

    image: ImageRef | None = None
    cpu: Cpu | None = None
    memory: MemoryMiB | None = None
    ports: Ports | None = None
    env: EnvMap | None = None
    command: Command | None = None
    network: NetworkPolicyIn | None = None
    runtime: RuntimeName | None = None
    disk: DiskMiB | None = None
    warm_pool: WarmPool | None = None

    @field_validator(
        "image", "cpu", "memory", "ports", "env", "network", "runtime", "disk", "warm_pool", mode="before"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for fields the body gives: leaving a field out keeps it, null is an error.
        if value is None:
            raise ValueError("This field cannot be null.")
        return value


class SetSecretRequest(RequestModel):
    key: SecretKey = Field(examples=["API_KEY"])
    value: Annotated[str, Field(strict=True), AfterValidator(check_secret_value)] = Field(
        description="Up to 64 KiB. Stored encrypted; never returned.", examples=["super-secret-value"]
    )


class SecretOut(ApiModel):
    key: str
    updated_at: Timestamp


class DeletedSecret(ApiModel):
    key: str
    deleted: Literal[True] = True


# Ports as a version stores them: a `host` left out stays out of the answer too.
StoredPorts = Annotated[list[PortSpec], PlainSerializer(dump_ports, return_type=list[dict[str, int]])]


class VersionOut(ApiModel):
    version: int
    image: str
    cpu: float
    memory: int
    ports: StoredPorts
    env: dict[str, str]
    command: list[str] | None
    network: NetworkPolicyOut
    runtime: str
    disk: int
    warm_pool: int
    created_at: Timestamp


class EnvironmentOut(ApiModel):
    id: uuid.UUID
    name: str
    version: int
    image: str
    cpu: float
    memory: int
    ports: StoredPorts
    env: dict[str, str]
    command: list[str] | None
    network: NetworkPolicyOut
    runtime: str
    disk: int
    warm_pool: int
    secrets: list[SecretOut]
    created_at: Timestamp
    updated_at: Timestamp


def version_fields(spec: Any) -> dict[str, Any]:
    """The versioned fields of a stored version, in the output models' names."""
    return {
        "version": spec.version,
        "image": spec.image,
        "cpu": spec.cpu,
        "memory": spec.memory_mib,
        "ports": spec.ports,
        "env": spec.env,
        "command": spec.command,
        "network": spec.network,
        "runtime": spec.runtime,
        "disk": spec.disk_mib,
        "warm_pool": spec.warm_pool,
    }
