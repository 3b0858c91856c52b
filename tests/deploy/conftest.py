"""Paths and loaders shared by the deployment checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SERVICES = ("api", "orchestrator", "log-shipper", "reaper", "metrics-collector", "webhooks")
# The port each service serves /metrics on (the API on its main port).
OPS_PORTS = {
    "api": 3001,
    "orchestrator": 9101,
    "log-shipper": 9102,
    "reaper": 9103,
    "metrics-collector": 9104,
    "webhooks": 9105,
}
# The services that reach the host's Docker engine.
DOCKER_SERVICES = ("orchestrator", "log-shipper", "reaper", "metrics-collector")
# What `docker-compose config` needs set (the compose file refuses to run without them).
COMPOSE_REQUIRED_ENV = {
    "SBX_JWT_SECRET": "compose-check-jwt-secret",
    "SBX_SECRETS_MASTER_KEY": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
    "GRAFANA_ADMIN_PASSWORD": "compose-check-password",
    "DOCKER_GID": "998",
    # One NATS password per service user.
    "SBX_NATS_PASSWORD_API": "compose-check-nats-api",
    "SBX_NATS_PASSWORD_ORCHESTRATOR": "compose-check-nats-orchestrator",
    "SBX_NATS_PASSWORD_LOG_SHIPPER": "compose-check-nats-log-shipper",
    "SBX_NATS_PASSWORD_REAPER": "compose-check-nats-reaper",
    "SBX_NATS_PASSWORD_METRICS_COLLECTOR": "compose-check-nats-metrics-collector",
    "SBX_NATS_PASSWORD_WEBHOOKS": "compose-check-nats-webhooks",
    "SBX_NATS_PASSWORD_MIGRATE": "compose-check-nats-migrate",
    "SBX_NATS_PASSWORD_ADMIN": "compose-check-nats-admin",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (INFRA / "grafana" / "dashboards" / "sandbox-platform.json").read_text()
    )
    return loaded
