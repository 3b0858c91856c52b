"""Crashes, restarts and commands that keep failing, against an orchestrator of the test's own.

These tests stop the platform's orchestrator and run one with short delays (ack wait 2 s, retry
delay 0.2 s, 3 deliveries), so that redeliveries happen within seconds; the platform's own is
started again afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sbx_common.status import Verb

from tests.orchestrator.driver import OrchestratorDriver, statuses
from tests.support.platform import Platform, start_process
from tests.support.waiting import wait_until

QUICK = {
    "SBX_COMMAND_ACK_WAIT": "2",
    "SBX_COMMAND_RETRY_DELAYS": "[0.2]",
    "SBX_COMMAND_MAX_DELIVER": "3",
}
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done"]
HEALTHY_AFTER_3S = ["sh", "-c", "sleep 3; mkdir -p /tmp; touch /tmp/ready; exec sleep 3600"]


@pytest.fixture(scope="module")
def quick_orchestrator(platform: Platform) -> Iterator[Platform]:
    platform.stop_service("orchestrator")
    platform.start_service("orchestrator", extra_env=QUICK)
    yield platform
    platform.stop_service("orchestrator")
    platform.start_service("orchestrator")


async def test_sigkill_during_create_ends_running_with_one_container(
    driver: OrchestratorDriver, quick_orchestrator: Platform, healthcheck_image: str
) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, image=healthcheck_image, command=HEALTHY_AFTER_3S)
    sandbox = await driver.start_sandbox(owner, environment)
    # The container runs, and the orchestrator waits for it to become healthy: kill it now.
    wait_until(lambda: (driver.inspect(sandbox) or {}).get("State", {}).get("Running") is True)
    quick_orchestrator.kill_service("orchestrator")
    assert (await driver.view(sandbox.id))["status"] == "starting"

    quick_orchestrator.start_service("orchestrator", extra_env=QUICK)
    row = await driver.wait_settled(sandbox, "running", timeout=60)
    assert row["applied_command_id"] == sandbox.create.id
    assert len(driver.containers_of(sandbox)) == 1
    info = driver.inspect(sandbox)
    assert info is not None
    assert info["State"]["Health"]["Status"] == "healthy"
    assert statuses(await driver.events(sandbox, until="running")).count("running") == 1


async def test_sigterm_lets_a_command_under_way_finish(
    driver: OrchestratorDriver, quick_orchestrator: Platform, healthcheck_image: str
) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, image=healthcheck_image, command=HEALTHY_AFTER_3S)
    sandbox = await driver.start_sandbox(owner, environment)
    wait_until(lambda: driver.inspect(sandbox) is not None)
    quick_orchestrator.stop_service("orchestrator")  # SIGTERM: returns once the process ended
    assert (await driver.view(sandbox.id))["status"] == "running"
    quick_orchestrator.start_service("orchestrator", extra_env=QUICK)


async def test_command_that_keeps_failing_is_dead_lettered(
    driver: OrchestratorDriver, quick_orchestrator: Platform
) -> None:
    owner = await driver.create_user()
    # Data the orchestrator cannot use (the API would never write it): every attempt fails.
    environment = await driver.create_environment(owner, ports=[{"container": "http"}])
    sandbox = await driver.start_sandbox(owner, environment)
    row = await driver.wait_settled(sandbox, "failed")
    assert row["status_reason"] == "create failed after 3 attempts"
    assert driver.containers_of(sandbox) == []

    letters = [d for d in await driver.dead_letters(Verb.CREATE) if d.command.id == sandbox.create.id]
    assert len(letters) == 1
    assert letters[0].deliveries == 3
    assert letters[0].error.startswith("ValueError")
    await driver.drain_commands()  # terminated: not redelivered again
    assert statuses(await driver.events(sandbox, until="failed")) == ["failed"]


async def test_restart_reconciles_containers_that_ended_meanwhile(
    driver: OrchestratorDriver, quick_orchestrator: Platform
) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, command=SERVE)
    killed = await driver.start_sandbox(owner, environment)
    removed = await driver.start_sandbox(owner, environment)
    await driver.wait_settled(killed, "running")
    await driver.wait_settled(removed, "running")

    quick_orchestrator.stop_service("orchestrator")
    subprocess.run(["docker", "kill", killed.container], check=True, capture_output=True)
    subprocess.run(["docker", "rm", "-f", removed.container], check=True, capture_output=True)
    quick_orchestrator.start_service("orchestrator", extra_env=QUICK)

    row = await driver.wait_settled(killed, "failed")
    assert (row["status_reason"], row["exit_code"]) == ("exited with code 137", 137)
    row = await driver.wait_settled(removed, "failed")
    assert row["status_reason"] == "the container was removed outside the platform"


async def test_starts_without_docker_and_reports_not_ready(platform: Platform, tmp_path: Path) -> None:
    env = {**platform.base_env, "SBX_DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    process, port = start_process("orchestrator", env, tmp_path / "orchestrator.log")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await http.get(f"http://127.0.0.1:{port}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"nats": True, "docker": False}
    finally:
        process.stop()
    assert process.process is None  # it stopped cleanly on SIGTERM
