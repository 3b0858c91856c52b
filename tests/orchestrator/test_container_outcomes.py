"""What Docker reports decides the status: exits, missing images, health checks."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
from sbx_common.status import Verb

from tests.orchestrator.driver import OrchestratorDriver, statuses
from tests.support.platform import Platform


def docker_time(value: str) -> datetime:
    """Docker's RFC 3339 timestamps carry nanoseconds; Python keeps microseconds."""
    seconds, _, fraction = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{seconds}.{(fraction + '000000')[:6]}+00:00")


async def test_container_exiting_by_itself_is_stopped_or_failed(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    # Both run (so they are `running` first), then end by themselves once told to.
    waits = ["sh", "-c", "while [ ! -e /done ]; do sleep 0.1; done; exit $(cat /done)"]
    environment = await driver.create_environment(owner, command=waits)
    clean = await driver.start_sandbox(owner, environment)
    crashing = await driver.start_sandbox(owner, environment)
    await driver.wait_settled(clean, "running")
    await driver.wait_settled(crashing, "running")

    await driver.exec(clean, ["sh", "-c", "echo 0 > /done"])
    await driver.exec(crashing, ["sh", "-c", "echo 3 > /done"])

    stopped = await driver.wait_settled(clean, "stopped")
    assert (stopped["exit_code"], stopped["status_reason"]) == (0, None)
    failed = await driver.wait_settled(crashing, "failed")
    assert (failed["exit_code"], failed["status_reason"]) == (3, "exited with code 3")
    assert failed["endpoints"] == []

    events = await driver.events(crashing, until="failed")
    assert statuses(events) == ["starting", "running", "failed"]
    assert events[-1].data == {"exitCode": 3}
    assert events[-1].command_id is None


async def test_command_that_exits_at_once_fails_with_its_exit_code(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, command=["sh", "-c", "exit 7"])
    sandbox = await driver.start_sandbox(owner, environment)
    # Seen exiting while being started, or (more likely) right after it was reported running.
    row = await driver.wait_settled(sandbox, "failed")
    assert (row["status"], row["status_reason"], row["exit_code"]) == ("failed", "exited with code 7", 7)


async def test_missing_image_fails_with_image_not_found(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, image="sbx-test-no-such-image:never")
    sandbox = await driver.start_sandbox(owner, environment)
    row = await driver.wait_settled(sandbox, "failed")
    assert row["status_reason"] == "image not found"
    assert driver.containers_of(sandbox) == []
    events = await driver.events(sandbox, until="failed")
    assert statuses(events) == ["starting", "failed"]


async def test_running_waits_for_a_healthy_container(
    driver: OrchestratorDriver, healthcheck_image: str, unhealthy_image: str
) -> None:
    owner = await driver.create_user()
    becomes_healthy = ["sh", "-c", "sleep 2; mkdir -p /tmp; touch /tmp/ready; exec sleep 3600"]
    healthy_env = await driver.create_environment(owner, image=healthcheck_image, command=becomes_healthy)
    never_env = await driver.create_environment(owner, image=unhealthy_image)
    healthy = await driver.start_sandbox(owner, healthy_env)
    never = await driver.start_sandbox(owner, never_env)

    row = await driver.wait_settled(healthy, "running")
    events = await driver.events(healthy, until="running")
    info = driver.inspect(healthy)
    assert info is not None
    assert info["State"]["Health"]["Status"] == "healthy"
    assert row["started_at"] is not None
    # `running` came only once the check passed, two seconds after the container started.
    health_log = info["State"]["Health"]["Log"]
    first_pass = min(docker_time(entry["End"]) for entry in health_log if entry["ExitCode"] == 0)
    assert events[-1].occurred_at >= first_pass

    failed = await driver.wait_settled(never, "failed")
    assert failed["status_reason"] == "unhealthy"


async def test_health_rpc_and_metrics(driver: OrchestratorDriver, platform: Platform) -> None:
    reply = await driver.nc.request("sbx.rpc.orchestrator.health", b"", timeout=10)
    answer = json.loads(reply.data)
    assert answer["docker"] == "ok"
    # What the engine offers, for the API's GET /info: runc always; runsc is announced as gvisor.
    assert answer["runtimes"][0] == "runc"
    assert set(answer["runtimes"]) <= {"runc", "gvisor"}
    assert answer["diskLimit"] in ("quota", "watch")
    async with httpx.AsyncClient(timeout=10) as http:
        port = platform.ops_ports["orchestrator"]
        ready = await http.get(f"http://127.0.0.1:{port}/health/ready")
        assert ready.json()["checks"] == {"nats": True, "docker": True}
    metrics = await platform.metrics("orchestrator")
    for name in (
        "orchestrator_command_duration_seconds",
        "orchestrator_docker_errors_total",
        'jetstream_consumer_pending{consumer="orchestrator__commands"}',
    ):
        assert name in metrics, name


async def test_destroy_does_not_wait_for_a_health_check_that_takes_long(
    driver: OrchestratorDriver, healthcheck_image: str
) -> None:
    owner = await driver.create_user()
    # Never healthy, and not unhealthy either for the image's 60 s start period.
    environment = await driver.create_environment(owner, image=healthcheck_image, command=["sleep", "3600"])
    sandbox = await driver.start_sandbox(owner, environment)
    await driver.events(sandbox, until="starting")
    destroy = await driver.send(sandbox, Verb.DESTROY)
    row = await driver.wait_applied(sandbox, destroy, timeout=20)
    assert row["status"] == "destroyed"
    assert driver.containers_of(sandbox) == []
    assert statuses(await driver.events(sandbox, until="destroyed")) == [
        "starting",
        "destroying",
        "destroyed",
    ]
