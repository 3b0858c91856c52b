"""The orchestrator runs in the host's PID namespace wherever it is deployed, as
docs/orchestrator.md says: timed-out execs are found by the host PID Docker reports."""

from __future__ import annotations

import yaml

from tests.deploy.conftest import INFRA, ROOT, load_yaml


def test_compose_gives_the_orchestrator_the_host_pid_namespace() -> None:
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    assert services["orchestrator"]["pid"] == "host"
    assert all("pid" not in service for name, service in services.items() if name != "orchestrator")


def test_the_orchestrator_daemonset_has_host_pid() -> None:
    docs = yaml.safe_load_all((INFRA / "k8s" / "orchestrator.yaml").read_text())
    daemonset = next(doc for doc in docs if doc["kind"] == "DaemonSet")
    assert daemonset["spec"]["template"]["spec"]["hostPID"] is True
