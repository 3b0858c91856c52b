"""Stop, start, restart and destroy really change the container; commands are idempotent."""

from __future__ import annotations

import uuid

from sbx_common.messages import SandboxCommand
from sbx_common.status import Verb
from sbx_devstack.servers import free_port

from tests.orchestrator.driver import OrchestratorDriver, statuses

# Exits at once on SIGTERM (sleeps in the background so the trap runs immediately).
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done"]


async def test_stop_start_restart_destroy_change_the_container(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, ports=[{"container": 8080}], command=SERVE)
    sandbox = await driver.start_sandbox(owner, environment)
    running = await driver.wait_settled(sandbox, "running")
    first_start = driver.inspect(sandbox)
    assert first_start is not None
    assert first_start["State"]["Running"] is True

    stop = await driver.send(sandbox, Verb.STOP)
    stopped = await driver.wait_settled(sandbox, "stopped")
    info = driver.inspect(sandbox)
    assert info is not None
    assert info["State"]["Running"] is False
    assert stopped["endpoints"] == []
    assert stopped["stopped_at"] is not None
    assert stopped["applied_command_id"] == stop.id

    await driver.send(sandbox, Verb.START)
    started = await driver.wait_settled(sandbox, "running")
    info = driver.inspect(sandbox)
    assert info is not None
    assert info["State"]["Running"] is True
    assert info["Id"] == first_start["Id"]  # the same container, started again
    assert started["endpoints"][0]["containerPort"] == 8080
    assert started["started_at"] > running["started_at"]

    before_restart = info["State"]["StartedAt"]
    restart = await driver.send(sandbox, Verb.RESTART)
    restarted = await driver.wait_applied(sandbox, restart)
    assert restarted["status"] == "running"
    info = driver.inspect(sandbox)
    assert info is not None
    assert info["State"]["Running"] is True
    assert info["State"]["StartedAt"] != before_restart

    destroy = await driver.send(sandbox, Verb.DESTROY)
    destroyed = await driver.wait_settled(sandbox, "destroyed")
    assert destroyed["destroyed_at"] is not None
    assert destroyed["applied_command_id"] == destroy.id
    assert driver.inspect(sandbox) is None

    events = await driver.events(sandbox, until="destroyed")
    assert statuses(events) == [
        "starting", "running",
        "stopping", "stopped",
        "starting", "running",
        "restarting", "running",
        "destroying", "destroyed",
    ]  # fmt: skip
    # Nothing the orchestrator did itself was mistaken for the container exiting on its own.
    assert all(e.command_id is not None for e in events)

    # Commands for a destroyed sandbox change nothing.
    late_start = await driver.send(sandbox, Verb.START)
    await driver.publish(late_start)
    await driver.drain_commands()
    later = await driver.events(sandbox)
    assert statuses(later) == statuses(events)
    assert driver.inspect(sandbox) is None


async def test_duplicated_commands_create_nothing_twice(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.create_sandbox(owner, await driver.create_environment(owner, command=SERVE))
    await driver.publish(sandbox.create)
    await driver.publish(sandbox.create)  # same Nats-Msg-Id: JetStream drops it
    await driver.publish(sandbox.create, msg_id=str(uuid.uuid4()))  # the same command, sent again
    await driver.wait_settled(sandbox, "running")
    # A start on the running sandbox is a no-op as far as the container goes.
    start = await driver.send(sandbox, Verb.START)
    row = await driver.wait_applied(sandbox, start)
    await driver.publish(sandbox.create, msg_id=str(uuid.uuid4()))  # stale now: skipped
    await driver.drain_commands()
    again = await driver.view(sandbox.id)
    assert (again["status"], again["applied_command_id"]) == ("running", row["applied_command_id"])

    assert len(driver.containers_of(sandbox)) == 1
    events = await driver.events(sandbox)
    assert statuses(events).count("running") == 2  # the create, and the start
    assert len({e.id for e in events}) == len(events)


async def test_stale_command_does_not_undo_a_newer_one(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.start_sandbox(owner, await driver.create_environment(owner, command=SERVE))
    await driver.wait_settled(sandbox, "running")
    stale_stop = SandboxCommand(verb=Verb.STOP, sandbox_id=sandbox.id, owner_id=owner)
    await driver.publish(stale_stop)  # never recorded as the sandbox's latest command
    restart = await driver.send(sandbox, Verb.RESTART)
    assert (await driver.wait_applied(sandbox, restart))["status"] == "running"
    await driver.drain_commands()
    info = driver.inspect(sandbox)
    assert info is not None
    assert info["State"]["Running"] is True
    assert "stopping" not in statuses(await driver.events(sandbox))


async def test_ttl_destroy_ends_expired(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.start_sandbox(owner, await driver.create_environment(owner, command=SERVE))
    await driver.wait_settled(sandbox, "running")
    # A TTL command is carried out only once the sandbox's expiry has passed (a PATCH may have
    # moved it since the reaper sent it).
    await driver.pg.execute("UPDATE sandboxes SET expires_at = now() WHERE id = $1", sandbox.id)
    # The reaper's command: its own id (it writes no table) and reason "ttl".
    await driver.publish(
        SandboxCommand(verb=Verb.DESTROY, sandbox_id=sandbox.id, owner_id=owner, reason="ttl")
    )
    row = await driver.wait_settled(sandbox, "expired")
    assert row["status_reason"] == "ttl"
    assert row["destroyed_at"] is not None
    assert driver.inspect(sandbox) is None
    [expired] = [e for e in await driver.events(sandbox, until="expired") if e.status == "expired"]
    assert expired.reason == "ttl"


async def test_ttl_command_for_an_expiry_not_yet_due_is_stale(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.start_sandbox(owner, await driver.create_environment(owner, command=SERVE))
    await driver.wait_settled(sandbox, "running")
    await driver.publish(
        SandboxCommand(verb=Verb.DESTROY, sandbox_id=sandbox.id, owner_id=owner, reason="ttl")
    )
    await driver.drain_commands()
    assert (await driver.view(sandbox.id))["status"] == "running"
    assert driver.inspect(sandbox) is not None
    # Once the expiry has passed, the TTL command (here onExpire "stop") is carried out.
    await driver.pg.execute("UPDATE sandboxes SET expires_at = now() WHERE id = $1", sandbox.id)
    await driver.publish(SandboxCommand(verb=Verb.STOP, sandbox_id=sandbox.id, owner_id=owner, reason="ttl"))
    row = await driver.wait_settled(sandbox, "stopped")
    assert row["status_reason"] == "ttl"
    assert row["active_expires_at"] is None
    statuses = [e.status for e in await driver.events(sandbox, until="stopped")]
    assert "destroying" not in statuses


async def test_sandboxes_are_handled_in_parallel(driver: OrchestratorDriver, healthcheck_image: str) -> None:
    owner = await driver.create_user()
    slow = ["sh", "-c", "sleep 2; mkdir -p /tmp; touch /tmp/ready; exec sleep 3600"]
    environment = await driver.create_environment(owner, image=healthcheck_image, command=slow)
    sandboxes = [await driver.start_sandbox(owner, environment) for _ in range(3)]
    for sandbox in sandboxes:
        await driver.wait_settled(sandbox, "running")
    events = [e for sandbox in sandboxes for e in await driver.events(sandbox, until="running")]
    # Every create was under way before any of them finished: none waited for another.
    last_start = max(e.occurred_at for e in events if e.status == "starting")
    first_running = min(e.occurred_at for e in events if e.status == "running")
    assert last_start < first_running


async def test_fixed_host_port_is_published_and_a_taken_one_fails(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    port = free_port()
    environment = await driver.create_environment(
        owner, ports=[{"container": 8080, "host": port}], command=SERVE
    )
    first = await driver.start_sandbox(owner, environment)
    row = await driver.wait_settled(first, "running")
    assert [(e["containerPort"], e["hostPort"]) for e in row["endpoints"]] == [(8080, port)]

    second = await driver.start_sandbox(owner, environment)
    failed = await driver.wait_settled(second, "failed")
    assert failed["status_reason"] == "a host port of the environment is already in use"


async def test_reaper_fail_ends_an_unsettled_sandbox_only(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    environment = await driver.create_environment(owner, command=SERVE)
    stuck = await driver.create_sandbox(owner, environment)  # its create was never published
    settled = await driver.start_sandbox(owner, environment)
    await driver.wait_settled(settled, "running")

    for sandbox in (stuck, settled):
        await driver.publish(
            SandboxCommand(
                verb=Verb.FAIL, sandbox_id=sandbox.id, owner_id=owner, reason="stuck: pending for 300s"
            )
        )
    await driver.drain_commands()

    row = await driver.view(stuck.id)
    assert (row["status"], row["status_reason"]) == ("failed", "stuck: pending for 300s")
    assert row["applied_command_id"] == stuck.create.id  # concludes the API's latest command
    assert statuses(await driver.events(stuck)) == ["failed"]
    assert (await driver.view(settled.id))["status"] == "running"
