"""Exec over `sbx.rpc.<hostId>.exec`: output, exit code, env, workdir, timeout, caps, ownership."""

from __future__ import annotations

import uuid

from sbx_common.status import Verb

from tests.orchestrator.driver import OrchestratorDriver

MIB = 1024 * 1024


async def test_exec_returns_exit_code_output_and_uses_env_and_workdir(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.start_sandbox(owner, await driver.create_environment(owner))
    await driver.wait_settled(sandbox, "running")

    result = await driver.exec(sandbox, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.error_code is None
    assert result.timed_out is False
    assert not result.stdout_truncated
    assert not result.stderr_truncated
    assert result.duration_ms >= 0

    result = await driver.exec(
        sandbox, ["sh", "-c", 'echo "$COLOUR"; pwd'], env={"COLOUR": "teal"}, workdir="/bin"
    )
    assert (result.exit_code, result.stdout) == (0, "teal\n/bin\n")

    missing = await driver.exec(sandbox, ["no-such-binary"])
    assert missing.exit_code not in (None, 0)

    # 2 MiB on stdout: at most 1 MiB kept (less if NATS's max_payload is smaller), flagged;
    # stderr untouched.
    big = await driver.exec(sandbox, ["sh", "-c", "head -c 2097152 /dev/zero | tr '\\0' a; echo done >&2"])
    assert big.exit_code == 0
    assert min(MIB, driver.nc.max_payload) - 4096 <= len(big.stdout) <= MIB
    assert set(big.stdout) == {"a"}
    assert big.stdout_truncated is True
    assert (big.stderr, big.stderr_truncated) == ("done\n", False)


async def test_exec_timeout_kills_the_process_tree(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.start_sandbox(owner, await driver.create_environment(owner))
    await driver.wait_settled(sandbox, "running")

    result = await driver.exec(
        sandbox, ["sh", "-c", "echo started; sleep 301 & sleep 302; echo never"], timeout_seconds=1
    )
    assert result.timed_out is True
    assert result.stdout == "started\n"
    assert 900 <= result.duration_ms < 5000
    processes = await driver.exec(sandbox, ["ps", "-o", "args"])
    assert "sleep 30" not in processes.stdout, processes.stdout


async def test_exec_is_refused_for_other_owners_and_stopped_sandboxes(driver: OrchestratorDriver) -> None:
    owner = await driver.create_user()
    sandbox = await driver.start_sandbox(owner, await driver.create_environment(owner))
    await driver.wait_settled(sandbox, "running")

    foreign = await driver.exec(sandbox, ["true"], owner_id=uuid.uuid4())
    assert (foreign.error_code, foreign.exit_code) == ("NOT_FOUND", None)
    sandbox.id, real_id = uuid.uuid4(), sandbox.id
    unknown = await driver.exec(sandbox, ["true"])
    assert unknown.error_code == "NOT_FOUND"
    sandbox.id = real_id

    await driver.send(sandbox, Verb.STOP)
    await driver.wait_settled(sandbox, "stopped")
    stopped = await driver.exec(sandbox, ["true"])
    assert stopped.error_code == "NOT_RUNNING"
