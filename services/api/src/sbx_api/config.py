"""Settings of the API service (all `SBX_` variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from sbx_common.settings import CryptoSettings


class ApiSettings(CryptoSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=3001, ge=0, le=65535)
    # Worker processes serving the API on one port (uvicorn's supervisor); 0: one per CPU this
    # process may run on. Whatever must hold across them (rate limits, per-user caps, idempotency
    # keys, revocation) lives in PostgreSQL, so any worker may answer any request
    # (docs/architecture.md, "API worker processes").
    api_workers: int = Field(default=0, ge=0, le=64)
    # How long an idle keep-alive connection stays open. Longer than clients keep theirs idle
    # (httpx, and so the Python SDK: 5 s; Node's fetch: 4 s): a client then always drops an idle
    # connection before the API does. At uvicorn's 5 s both closed at the same moment, and a
    # request sent on a connection the API was closing failed with no answer (for a POST, with
    # no way to know whether it was carried out). Behind a load balancer, set it above the
    # balancer's own idle timeout.
    api_keepalive_seconds: int = Field(default=75, ge=1)
    # How long a lifecycle call waits for JetStream to store its command before it answers 503
    # (nothing changed). It tries again meanwhile: long enough to ride out the election of a new
    # leader of SBX_CMD when a NATS server of a cluster is lost (4 to 9 s).
    command_publish_timeout_seconds: float = Field(default=12.0, gt=0, le=60)
    jwt_secret: SecretStr = SecretStr("")
    jwt_ttl_hours: float = Field(default=24.0, gt=0)
    max_body_bytes: int = 1024 * 1024
    # File uploads (PUT .../files/content, .../files/archive) are streamed, up to this many bytes.
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # File bytes on a direct connection to the sandbox's orchestrator when it offers one
    # (docs/files.md, "The bytes' path"); off: always on NATS.
    files_direct: bool = True
    cors_origins: str = ""  # comma separated; empty disables CORS
    # The web dashboard's built files (clients/web/dist), served at /ui/. Unset: that folder of
    # the source tree the API runs from, when it exists.
    ui_dir: Path | None = None
    # Comma separated addresses of reverse proxies whose X-Forwarded-For names the client (per-IP
    # rate limits count that address). Empty: no header is believed, so no client can pick the
    # address it is counted under.
    trusted_proxies: str = ""

    rate_limit_per_minute: int = Field(default=100, ge=1)
    auth_rate_limit: int = Field(default=20, ge=1)  # per 15 minutes per IP on /auth/*
    # Where the rate limits are counted: "postgres" (shared by every worker and instance) or
    # "memory" (this process only: right for SBX_API_WORKERS=1 and one instance).
    rate_limit_storage: Literal["postgres", "memory", "memory://"] = "postgres"

    # Which of the hosts with room a new sandbox goes to: `spread` the least loaded (by the larger
    # of its CPU and memory shares), `pack` the most loaded (docs/scale-out.md).
    placement: Literal["spread", "pack"] = "spread"

    max_environments_per_user: int = Field(default=20, ge=0)
    max_sandboxes_per_user: int = Field(default=10, ge=0)
    max_cpu_per_user: float = Field(default=16.0, gt=0)  # cores, over sandboxes not terminal
    max_memory_per_user: int = Field(default=32768, gt=0)  # MiB, over sandboxes not terminal
    max_snapshots_per_user: int = Field(default=20, ge=0)  # not deleted
    max_volumes_per_user: int = Field(default=10, ge=0)
    max_volume_mib_per_user: int = Field(default=20480, ge=0)  # sum of the volumes' sizes
    max_webhooks_per_user: int = Field(default=20, ge=0)
    # Webhook URLs on loopback, private or link-local addresses are refused (400) unless true
    # (the webhooks service has the same setting for delivery time).
    webhook_allow_private: bool = False
    sandbox_create_rate_limit: int = Field(default=30, ge=1)  # creates + replicates per minute
    # Writable filesystem of a sandbox (MiB) when its environment gives no `disk`.
    default_disk_mb: int = Field(default=2048, ge=64, le=102400)
    # Registries on loopback, link-local or private hosts that environments may still use
    # (comma separated, as written in image references: `localhost:5000,10.0.0.5`).
    allowed_registries: str = ""

    # Streams (SSE, WebSockets, terminal).
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)  # comment line on idle event streams
    ws_log_buffer_lines: int = Field(default=10_000, ge=1)  # per logs socket; past it: close 1013
    ws_terminal_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # per terminal socket
    terminal_open_timeout_seconds: float = Field(default=10.0, gt=0)
    terminal_keepalive_seconds: float = Field(default=10.0, gt=0)  # "still here" to the orchestrator
    # Largest WebSocket message a client may send (terminal input included); past it: close 1009.
    ws_max_message_bytes: int = Field(default=256 * 1024, ge=1024)

    # Fair use: what one user holds open at once (429 QUOTA_EXCEEDED, or close 4029 for sockets).
    max_concurrent_execs_per_user: int = Field(default=8, ge=1)
    max_terminals_per_user: int = Field(default=10, ge=1)
    max_streams_per_user: int = Field(default=20, ge=1)  # event (SSE, WebSocket) and log sockets
    # WebSockets through the port proxy, counted against the sandbox's owner (previews included).
    max_proxy_sockets_per_user: int = Field(default=100, ge=1)
    # How long an exec may wait in the orchestrator's queue before it starts; the API waits this
    # long beyond the command's own timeout for the answer.
    exec_queue_wait_seconds: float = Field(default=30.0, ge=0)
    # A list page stops growing once its JSON passes this many bytes (and gives a nextCursor).
    max_page_bytes: int = Field(default=1024 * 1024, ge=1024)

    # /metrics: the business gauges are refreshed this often in the background; a non-empty token
    # makes /metrics require `Authorization: Bearer <token>` (401 without it).
    metrics_refresh_seconds: float = Field(default=15.0, gt=0)
    metrics_token: SecretStr = SecretStr("")

    # Ports and previews (docs/previews.md). Where clients reach the API, for preview URLs
    # (e.g. https://sbx.example.com behind a reverse proxy); empty: the address of the request.
    public_url: str = ""
    # Preview URLs on hosts of their own, one per sandbox port, e.g.
    # https://{port}-{id}.preview.example.com (wildcard DNS to the API); empty: previews are
    # served under /sandboxes/:id/ports/:port/ on the API's own origin (docs/previews.md).
    preview_url: str = ""
    # Key of the preview tokens' HMAC; empty: derived from SBX_JWT_SECRET.
    preview_secret: SecretStr = SecretStr("")
    proxy_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # Longest wait for the sandbox's next bytes (a silent long poll past it is cut).
    proxy_read_timeout_seconds: float = Field(default=300.0, gt=0)
    # Proxied requests per minute per sandbox owner (they skip SBX_RATE_LIMIT_PER_MINUTE: a page
    # loads many assets).
    proxy_rate_limit_per_minute: int = Field(default=6000, ge=1)
    # Largest WebSocket message the sandbox may send through the proxy; past it: close 1009.
    proxy_ws_max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
