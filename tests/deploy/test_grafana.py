"""The Grafana provisioning and dashboard: valid, and built only on metrics the services export."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

from tests.deploy.conftest import INFRA, load_yaml
from tests.deploy.promql import PROMETHEUS_SYNTHETIC, exported_names, metric_names
from tests.support.platform import Platform
from tests.support.waiting import wait_for

_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def used_metric_names(dashboard: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for expr in dashboard_expressions(dashboard):
        names |= metric_names(expr)
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names.update(_LABEL_VALUES.findall(text))
    rules = load_yaml(INFRA / "prometheus" / "rules" / "sandbox-platform.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            names |= metric_names(rule["expr"])
    return names


def test_provisioning_points_the_dashboard_at_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    datasources = load_yaml(INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = load_yaml(INFRA / "grafana" / "provisioning" / "dashboards" / "sandbox-platform.yml")
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_dashboard_shows_what_operators_watch(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(dashboard_expressions(dashboard))
    for needed in (
        "sandboxes_running",
        'orchestrator_command_duration_seconds_bucket{verb="create"}',
        "sum by (method, path) (rate(http_requests_total",
        "http_request_duration_seconds_bucket",
        "sandbox_cpu_usage_percent",
        "sandbox_memory_usage_bytes",
        "jetstream_consumer_pending",
    ):
        assert needed in exprs, needed


async def test_every_metric_the_dashboard_and_alerts_use_is_exported(
    platform: Platform, dashboard: dict[str, Any]
) -> None:
    exported: set[str] = set(PROMETHEUS_SYNTHETIC)
    urls = [f"{platform.api_url}/metrics"]
    urls += [f"http://127.0.0.1:{port}/metrics" for port in platform.ops_ports.values()]
    async with httpx.AsyncClient(timeout=10) as http:
        for url in urls:
            response = await http.get(url)
            assert response.status_code == 200, url
            exported |= exported_names(response.text)
    used = used_metric_names(dashboard)
    assert used, "no metric found in the dashboard"
    assert used <= exported, f"not exported by any running service: {sorted(used - exported)}"


async def test_every_durable_consumer_exports_its_lag(platform: Platform) -> None:
    consumers = {
        "orchestrator": "orchestrator__commands",
        "log-shipper": "log-shipper__events",
        "reaper": "reaper__events",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for service, consumer in consumers.items():
            url = f"http://127.0.0.1:{platform.ops_ports[service]}/metrics"

            async def exported(url: str = url, consumer: str = consumer) -> bool:
                text = (await http.get(url)).text
                return f'jetstream_consumer_pending{{consumer="{consumer}"}}' in text

            await wait_for(exported, timeout=30, interval=0.5)
