"""infra/k8s: the services, workers on Docker nodes, nothing running as root; NATS as a
three-server JetStream cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from sbx_common.nats_permissions import SERVICE_USER_OF, SERVICE_USERS, deployment_config

from tests.deploy.conftest import DOCKER_SERVICES, INFRA, OPS_PORTS, SERVICES, load_yaml

K8S = INFRA / "k8s"
# Per Docker node, each under the node's name as its SBX_HOST_ID (the reaper for its engine's
# orphans and images).
HOST_SERVICES = ("orchestrator", "log-shipper", "metrics-collector", "reaper")


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
        kind = "DaemonSet" if name in HOST_SERVICES else "Deployment"
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
            "reaper": "DaemonSet",
        }.get(name, "Deployment")
        container = docs[(kind, f"sbx-{name}")]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["SBX_NATS_USER"]["value"] == user, name
        ref = env["SBX_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "sbx-nats", "key": user}, name


def test_each_docker_node_is_a_host_named_after_the_node() -> None:
    docs = manifests()
    for name in HOST_SERVICES:
        pod = docs[("DaemonSet", f"sbx-{name}")]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"sandbox-platform/docker-node": "true"}, name
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["SBX_HOST_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}, name
        assert {
            "name": "docker-socket",
            "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"},
        } in pod["volumes"], name
    for name in ("api", "webhooks"):
        assert docs[("Deployment", f"sbx-{name}")]["spec"]["replicas"] >= 2, name


def test_nats_is_a_three_server_jetstream_cluster_the_services_all_know() -> None:
    docs = manifests()
    nats = docs[("StatefulSet", "nats")]["spec"]
    assert nats["replicas"] == 3
    assert nats["serviceName"] == "nats-cluster"
    headless = docs[("Service", "nats-cluster")]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["ports"]} >= {4222, 6222}
    assert docs[("PodDisruptionBudget", "nats")]["spec"]["maxUnavailable"] == 1
    pod = nats["template"]["spec"]
    container = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/data"
    assert [t["metadata"]["name"] for t in nats["volumeClaimTemplates"]] == ["data"]
    # Every service user's password reaches the server, as auth.conf reads it.
    env = {e["name"] for e in container["env"]}
    assert {u.env_name for u in SERVICE_USERS.values()} <= env

    # The configuration: routes to every member, JetStream on the volume, the users' file.
    kustomization = load_yaml(K8S / "kustomization.yaml")
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "nats-config"]
    assert set(generator["files"]) == {"nats/nats.conf", "nats/auth.conf"}
    assert {"name": "config", "configMap": {"name": "nats-config"}} in pod["volumes"]
    conf = (K8S / "nats" / "nats.conf").read_text()
    routes = re.findall(r"nats-route://(nats-\d)\.nats-cluster\.sandbox-platform\.svc\S*:6222", conf)
    assert routes == ["nats-0", "nats-1", "nats-2"]
    assert 'store_dir: "/data"' in conf
    assert "server_name: $POD_NAME" in conf
    assert "include ./auth.conf" in conf
    assert (K8S / "nats" / "auth.conf").read_text() == deployment_config()

    # The services are given every server, and the streams three copies.
    config = docs[("ConfigMap", "sbx-config")]["data"]
    servers = config["SBX_NATS_URL"].split(",")
    assert servers == [f"nats://nats-{i}.nats-cluster.sandbox-platform.svc:4222" for i in range(3)]
    assert config["SBX_STREAM_REPLICAS"] == "3"


def test_the_orchestrator_takes_file_transfers_on_its_node_address() -> None:
    """The API pods connect to the node's address for a transfer's bytes (docs/files.md): the
    listener is bound there, after the variable it is built from."""
    pod = manifests()[("DaemonSet", "sbx-orchestrator")]["spec"]["template"]["spec"]
    env = [e["name"] for e in pod["containers"][0]["env"]]
    values = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert values["SBX_NODE_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert values["SBX_DATA_LISTEN"]["value"] == "$(SBX_NODE_IP):7781"
    assert env.index("SBX_NODE_IP") < env.index("SBX_DATA_LISTEN")  # k8s expands earlier ones only
    assert {"name": "data", "containerPort": 7781} in pod["containers"][0]["ports"]
