"""promtool accepts the Prometheus config, and a real Prometheus scrapes every running service."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sbx_devstack.servers import free_port, wait_for_port

from tests.deploy.conftest import INFRA, SERVICES
from tests.harness import Platform, wait_for


def test_promtool_accepts_the_config_and_its_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(INFRA / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def scrape_config(platform: Platform) -> dict[str, Any]:
    """The compose config's jobs, pointed at the ports of the platform this session runs."""
    ports = {"api": platform.api_port, **platform.ops_ports}
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{ports[name]}"]}]}
            for name in SERVICES
        ],
    }


@pytest.fixture
def prometheus(platform: Platform, tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(platform)))
    port = free_port()
    process = subprocess.Popen(
        [
            "/usr/bin/prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_a_real_prometheus_scrapes_every_service_up(prometheus: str) -> None:
    targets: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as http:

        async def every_target_up() -> bool:
            nonlocal targets
            body = (await http.get("/api/v1/targets", params={"state": "active"})).json()
            targets = body["data"]["activeTargets"]
            return len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets)

        try:
            await wait_for(every_target_up, timeout=30, interval=0.5)
        except AssertionError:
            report = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
            raise AssertionError(f"targets not all up: {report}") from None
        assert {t["labels"]["job"] for t in targets} == set(SERVICES)
        # And the samples are queryable: `up` is 1 for every service.
        result = (await http.get("/api/v1/query", params={"query": "up == 1"})).json()["data"]["result"]
        assert {r["metric"]["job"] for r in result} == set(SERVICES)
