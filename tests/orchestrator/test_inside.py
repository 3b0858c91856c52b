"""Helper commands inside a sandbox's container: what exec timeouts and terminal hang-ups fall
back to when the orchestrator may not signal a process by its host PID."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from sbx_common.messages import ExecRequest
from sbx_orchestrator.engine import in_container as inside
from sbx_orchestrator.engine.exec_run import ExecRun

from tests.support.waiting import wait_until


@pytest.fixture
def container(test_image: str) -> Iterator[str]:
    client = docker.from_env()
    made = client.containers.run(test_image, ["sleep", "600"], detach=True)
    try:
        yield str(made.id)
    finally:
        made.remove(force=True)


def _container_pid(host_pid: int) -> int:
    """The PID the container sees (the tests run in the host's PID namespace)."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid")


def test_a_process_is_killed_from_inside_by_its_container_pid(container: str) -> None:
    api = docker.APIClient()
    started = api.exec_create(container, ["sleep", "600"])["Id"]
    api.exec_start(started, detach=True)
    wait_until(lambda: api.exec_inspect(started).get("Pid"), timeout=10)
    host_pid = int(api.exec_inspect(started)["Pid"])
    request = ExecRequest(sandbox_id=uuid.uuid4(), owner_id=uuid.uuid4(), command=["true"])
    run = ExecRun(api, container, request, 1024)
    assert run._kill_inside([_container_pid(host_pid)])
    assert inside.wait_exit_code(api, started, timeout=30) == 137  # returns as soon as it has ended


def test_commands_the_image_lacks_are_skipped(container: str) -> None:
    api = docker.APIClient()
    assert not inside.run_inside(api, container, [["no-such-command"]])
    assert inside.run_inside(api, container, [["no-such-command"], ["true"]])
    assert inside.run_inside(api, container, [["false"]])  # it ran: its failure is its own
