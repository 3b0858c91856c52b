"""docker-compose.yml validates with Debian's docker-compose and wires every service."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sbx_common.nats_permissions import SERVICE_USER_OF, SERVICE_USERS

from tests.deploy.conftest import COMPOSE_REQUIRED_ENV, DOCKER_SERVICES, OPS_PORTS, ROOT, SERVICES, load_yaml


def compose(args: list[str], env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in COMPOSE_REQUIRED_ENV}
    return subprocess.run(
        ["docker-compose", "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"), *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def resolved(empty_env_file: Path) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, variables substituted)."""
    result = compose(["config"], COMPOSE_REQUIRED_ENV, empty_env_file)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_validates(empty_env_file: Path) -> None:
    result = compose(["config", "-q"], COMPOSE_REQUIRED_ENV, empty_env_file)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_secrets(empty_env_file: Path) -> None:
    assert compose(["config", "-q"], {}, empty_env_file).returncode != 0
    env = {k: v for k, v in COMPOSE_REQUIRED_ENV.items() if k != "SBX_JWT_SECRET"}
    result = compose(["config", "-q"], env, empty_env_file)
    assert result.returncode != 0
    assert "SBX_JWT_SECRET" in result.stderr


def test_compose_runs_the_whole_platform(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {*SERVICES, "nats", "postgres", "migrate", "prometheus", "grafana"}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["nats"]["command"] == ["--config", "/etc/nats/nats-server.conf"]
    server_config = (ROOT / "infra" / "nats" / "nats-server.conf").read_text()
    assert "jetstream" in server_config
    assert "include ./auth.conf" in server_config
    assert services["migrate"]["entrypoint"] == ["sbx-migrate"]
    for name in SERVICES:
        service = services[name]
        assert service["image"].startswith(f"sbx-{name}:"), name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = service["environment"]
        assert env["SBX_DATABASE_URL"].startswith("postgresql://")
        if name == "orchestrator":
            # In the host's network namespace (the sandboxes' firewall): NATS and PostgreSQL on
            # the host's loopback, where compose publishes them.
            assert service["network_mode"] == "host"
            assert service["cap_add"] == ["NET_ADMIN"]
            assert env["SBX_NATS_URL"] == "nats://127.0.0.1:4222"
            assert "@127.0.0.1:5432/" in env["SBX_DATABASE_URL"]
        else:
            assert env["SBX_NATS_URL"] == "nats://nats:4222"
            assert "@postgres:5432/" in env["SBX_DATABASE_URL"]
        port = env["SBX_API_PORT"] if name == "api" else env["SBX_METRICS_PORT"]
        assert int(port) == OPS_PORTS[name], name
        assert service["cap_drop"] == ["ALL"]


def test_only_the_docker_workers_reach_the_docker_socket(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in SERVICES:
        volumes = [str(v) for v in services[name].get("volumes", [])]
        has_socket = any("/var/run/docker.sock:/var/run/docker.sock" in v for v in volumes)
        assert has_socket == (name in DOCKER_SERVICES), name
        if has_socket:
            assert services[name]["group_add"] == [COMPOSE_REQUIRED_ENV["DOCKER_GID"]]


def test_prometheus_scrapes_every_service_of_the_compose_file() -> None:
    config = load_yaml(ROOT / "infra" / "prometheus" / "prometheus.yml")
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    for name in SERVICES:
        host = "host.docker.internal" if name == "orchestrator" else name  # on the host network
        assert targets[name] == [f"{host}:{OPS_PORTS[name]}"]


def test_every_service_logs_in_to_nats_as_its_own_user(resolved: dict[str, Any]) -> None:
    """Each service (and the migrations) has its own NATS user and password, and nats-server
    knows every one of them, from the environment its auth.conf reads."""
    services = resolved["services"]
    nats_env = services["nats"]["environment"]
    seen = set()
    for name, user in SERVICE_USER_OF.items():
        env = services[name]["environment"]
        assert env["SBX_NATS_USER"] == user, name
        password = env["SBX_NATS_PASSWORD"]
        assert password == COMPOSE_REQUIRED_ENV[f"SBX_NATS_PASSWORD_{name.upper().replace('-', '_')}"]
        assert nats_env[SERVICE_USERS[user].env_name] == password, name
        seen.add(password)
    assert len(seen) == len(SERVICE_USER_OF)
    auth = (ROOT / "infra" / "nats" / "auth.conf").read_text()
    for user in SERVICE_USERS.values():
        assert f"${user.env_name}" in auth


def test_compose_refuses_to_start_without_the_nats_passwords(empty_env_file: Path) -> None:
    env = {k: v for k, v in COMPOSE_REQUIRED_ENV.items() if k != "SBX_NATS_PASSWORD_REAPER"}
    result = compose(["config", "-q"], env, empty_env_file)
    assert result.returncode != 0
    assert "SBX_NATS_PASSWORD_REAPER" in result.stderr
