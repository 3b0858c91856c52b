"""Python SDK of the Sandbox Platform: `Client` (sync) and `AsyncClient` (asyncio), typed models,
and one error class per contract code.

    from sandbox_platform import Client

    client = Client()  # SBX_API_URL, SBX_API_KEY
    env = client.environments.create(name="py", image="python:3.12-slim")
    with client.sandboxes.create(environment_id=env.id) as sandbox:
        print(sandbox.exec("python -V").stdout)
"""

from sandbox_platform._async_streams import AsyncStream, AsyncTerminal, Opening
from sandbox_platform._core import RetryPolicy
from sandbox_platform._sync_streams import Stream, Terminal
from sandbox_platform._version import __version__
from sandbox_platform.async_client import AsyncClient, AsyncSandbox
from sandbox_platform.client import Client, Sandbox
from sandbox_platform.errors import (
    APIConnectionError,
    APITimeoutError,
    ConflictError,
    InternalServerError,
    InvalidStateError,
    NotFoundError,
    NotRunningError,
    PayloadTooLargeError,
    QuotaExceededError,
    RateLimitedError,
    SandboxPlatformError,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)
from sandbox_platform.models import (
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    ApiKey,
    AuditEvent,
    CpuUsage,
    CreatedApiKey,
    Endpoint,
    Environment,
    EnvironmentVersion,
    Event,
    ExecResult,
    Health,
    IoUsage,
    LogLine,
    MemoryUsage,
    Metrics,
    NetworkPolicy,
    NetworkUsage,
    Port,
    SandboxInfo,
    Secret,
    Snapshot,
    User,
    Volume,
    VolumeMount,
)

__all__ = [
    "SETTLED_STATUSES",
    "TERMINAL_STATUSES",
    "APIConnectionError",
    "APITimeoutError",
    "ApiKey",
    "AsyncClient",
    "AsyncSandbox",
    "AsyncStream",
    "AsyncTerminal",
    "AuditEvent",
    "Client",
    "ConflictError",
    "CpuUsage",
    "CreatedApiKey",
    "Endpoint",
    "Environment",
    "EnvironmentVersion",
    "Event",
    "ExecResult",
    "Health",
    "InternalServerError",
    "InvalidStateError",
    "IoUsage",
    "LogLine",
    "MemoryUsage",
    "Metrics",
    "NetworkPolicy",
    "NetworkUsage",
    "NotFoundError",
    "NotRunningError",
    "Opening",
    "PayloadTooLargeError",
    "Port",
    "QuotaExceededError",
    "RateLimitedError",
    "RetryPolicy",
    "Sandbox",
    "SandboxInfo",
    "SandboxPlatformError",
    "Secret",
    "Snapshot",
    "Stream",
    "Terminal",
    "UnauthorizedError",
    "UnavailableError",
    "User",
    "ValidationError",
    "Volume",
    "VolumeMount",
    "__version__",
]
