"""infra/k8s: the five services, workers on Docker nodes, nothing running as root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sbx_common.nats_permissions import SERVICE_USER_OF

from tests.deploy.conftest import DOCKER_SERVICES, INFRA, OPS_PORTS, SERVICES, load_yaml

K8S = INFRA / "k8s"


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / Path(resource)).read_text()):
            if doc:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), resource
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_every_service_has_a_workload_placed_as_documented() -> None:
    docs = manifests()
    assert ("Job", "sbx-migrate") in docs
    assert ("ConfigMap", "sbx-config") in docs
    for name in SERVICES:
        kind = "DaemonSet" if name in ("orchestrator", "log-shipper", "metrics-collector") else "Deployment"
        workload = docs[(kind, f"sbx-{name}")]
        assert (("Service", f"sbx-{name}")) in docs
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        if name == "orchestrator":
            # The sandboxes' firewall: root in the node's network namespace with NET_ADMIN only
            # (docs/security.md, "Sandbox networks").
            assert pod["hostNetwork"] is True
            assert pod["securityContext"]["runAsUser"] == 0
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
        else:
            assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["image"] == f"sbx-{name}"
        assert container["ports"][0]["containerPort"] == OPS_PORTS[name]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        on_docker_node = pod.get("nodeSelector") == {"sandbox-platform/docker-node": "true"}
        assert on_docker_node == (name in DOCKER_SERVICES), name
        assert ("/var/run/docker.sock" in mounts) == (name in DOCKER_SERVICES), name
        if name in DOCKER_SERVICES:
            assert pod["securityContext"]["supplementalGroups"], name


def test_every_workload_logs_in_to_nats_as_its_own_user() -> None:
    docs = manifests()
    for name, user in SERVICE_USER_OF.items():
        kind = {
            "migrate": "Job",
            "orchestrator": "DaemonSet",
            "log-shipper": "DaemonSet",
            "metrics-collector": "DaemonSet",
        }.get(name, "Deployment")
        container = docs[(kind, f"sbx-{name}")]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["SBX_NATS_USER"]["value"] == user, name
        ref = env["SBX_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "sbx-nats", "key": user}, name
