"""Sandboxes made without the agent (an orchestrator with no agent binary, as before the agent
existed) keep working through the Docker exec API, also once the orchestrator has the agent;
background processes tell them apart with 409 INVALID_STATE. A platform of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker

from tests.agent.processes import start
from tests.support.api import create_environment, error_of, signup
from tests.support.platform import agent_binary, dedicated_platform
from tests.support.sandboxes import create_sandbox, exec_in
from tests.support.waiting import wait_for


async def test_containers_without_the_agent_exec_through_docker(
    tmp_path: Path, test_image: str, docker_client: docker.DockerClient
) -> None:
    without = {"SBX_AGENT_BINARY": str(tmp_path / "no-agent-here")}
    async with dedicated_platform(tmp_path, services=("api",), env=without) as own:
        plat = own.platform
        plat.start_service("orchestrator")
        async with plat.client() as client:
            user = await signup(client)
            environment = await create_environment(client, user, test_image, cpu=0.5, memory=64)
            sandbox = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90")
            assert sandbox["status"] == "running", sandbox
            container = docker_client.containers.get(f"sbx-{sandbox['id']}")
            assert "sbx.agent" not in container.labels
            assert container.attrs["Mounts"] == []

            result = await exec_in(client, user, sandbox["id"], ["sh", "-c", "echo out; exit 2"])
            assert (result["exitCode"], result["stdout"]) == (2, "out\n")
            listing = await exec_in(client, user, sandbox["id"], "ps -o args")
            assert "sbx-agent" not in listing["stdout"]
            refused = await client.post(
                f"/sandboxes/{sandbox['id']}/processes", json={"command": ["true"]}, headers=user.headers
            )
            error_of(refused, 409, "INVALID_STATE")

            # The orchestrator now has the agent: the old container still execs (Docker's way),
            # a new one gets the agent.
            plat.stop_service("orchestrator")
            plat.start_service("orchestrator", {"SBX_AGENT_BINARY": agent_binary()})

            async def exec_answered() -> dict[str, Any] | None:
                response = await client.post(
                    f"/sandboxes/{sandbox['id']}/exec", json={"command": "echo still"}, headers=user.headers
                )
                return response.json()["data"] if response.status_code == 200 else None

            again = await wait_for(exec_answered, what="exec answered by the restarted orchestrator")
            assert again["stdout"] == "still\n"
            fresh = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90")
            assert "sbx.agent" in docker_client.containers.get(f"sbx-{fresh['id']}").labels
            process = await start(client, user, fresh["id"], ["echo", "hi"])
            assert process["status"] == "running"
