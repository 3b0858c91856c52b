"""promtool accepts the Prometheus config, and a real Prometheus scrapes every running service."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sbx_devstack.servers import free_port, wait_for_port

from tests.deploy.conftest import INFRA, SERVICES
from tests.support.platform import Platform
from tests.support.waiting import wait_for


def test_promtool_accepts_the_config_and_its_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(INFRA / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def scrape_config(platform: Platform, prometheus_port: int) -> dict[str, Any]:
    """The compose Prometheus config itself, its targets pointed at this session's ports.

    Only the `host:port` of each target and the intervals change: jobs, rules and everything else
    are what a compose deployment runs."""
    config: dict[str, Any] = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    ports = {"api": platform.api_port, **platform.ops_ports, "prometheus": prometheus_port}
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    return config


@pytest.fixture
def prometheus(platform: Platform, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(platform, port)))
    shutil.copytree(INFRA / "prometheus" / "rules", tmp_path / "rules")
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
    jobs = {*SERVICES, "prometheus"}
    targets: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as http:

        async def every_target_up() -> bool:
            nonlocal targets
            body = (await http.get("/api/v1/targets", params={"state": "active"})).json()
            targets = body["data"]["activeTargets"]
            return len(targets) == len(jobs) and all(t["health"] == "up" for t in targets)

        try:
            await wait_for(every_target_up, timeout=30, interval=0.5)
        except AssertionError:
            report = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
            raise AssertionError(f"targets not all up: {report}") from None
        assert {t["labels"]["job"] for t in targets} == jobs
        # And the samples are queryable: `up` is 1 for every service.
        result = (await http.get("/api/v1/query", params={"query": "up == 1"})).json()["data"]["result"]
        assert {r["metric"]["job"] for r in result} == jobs
        # The alert rules of the config were loaded and evaluate without errors.
        groups = (await http.get("/api/v1/rules")).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert rules

        async def evaluated() -> bool:
            groups = (await http.get("/api/v1/rules")).json()["data"]["groups"]
            return all(r["health"] == "ok" for g in groups for r in g["rules"])

        await wait_for(evaluated, timeout=15, interval=0.5)
