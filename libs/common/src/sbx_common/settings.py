"""Settings shared by every service; each service subclasses `CommonSettings`.

All variables carry the `SBX_` prefix (see `.env.example`). Secrets are `SecretStr` so that
they never render in a repr, a log line or an error message.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every service needs: where the database and NATS are, and how to log."""

    model_config = SettingsConfigDict(env_prefix="SBX_", extra="ignore")

    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/sandbox")
    nats_url: str = "nats://127.0.0.1:4222"
    # This service's own NATS user (see sbx_common/nats_permissions.py); empty: no credentials.
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")
    # TLS to NATS: a CA file to trust (turns TLS on), and a client certificate and key for
    # servers that verify clients. Paths; empty: unused.
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    # Copies JetStream keeps of every stream and KV bucket (`sbx-migrate` applies it): 1 on a
    # single NATS server, 3 on a cluster of three or more (any one server may then be lost).
    stream_replicas: int = Field(default=1, ge=1, le=5)
    log_level: str = "INFO"
    # Each service serves /metrics and /health/* on its own port (the API on its main port).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Where the sandboxes' published ports are reachable, for `endpoints[].url`.
    public_host: str = "127.0.0.1"
    # Name of this platform installation. Containers carry it as a label, and the reaper only
    # ever touches containers of its own instance, so several installations (or test runs) can
    # share one Docker engine.
    instance: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # The Docker host the per-host services (orchestrator, log shipper, metrics collector) serve:
    # commands and requests for its sandboxes are addressed to it (docs/scale-out.md). One host
    # needs nothing: `local` is what a single-host installation has always been.
    host_id: str = Field(default="local", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")


class CryptoSettings(CommonSettings):
    """Settings of the services that encrypt or decrypt secrets."""

    secrets_master_key: SecretStr = SecretStr("")
    # Older master keys (base64 of 32 bytes each, comma separated), still accepted for
    # decryption; each key's id is derived from the key itself, so none has to be named.
    secrets_old_keys: SecretStr = SecretStr("")
