"""A background process across crashes: the API SIGKILLed while it prints, then the orchestrator
SIGKILLed while it prints. The process runs on (the agent holds its output, and stops reading its
pipes when its buffer is full), and after the restarts its output holds every seq exactly once,
every line in order, and its status ends right. A platform of its own: it kills services."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.agent.processes import all_output, get, read_socket, socket_url, start, text_of, wait_ended
from tests.support.api import User, create_environment, signup
from tests.support.platform import dedicated_platform
from tests.support.sandboxes import create_sandbox
from tests.support.waiting import wait_for

# Numbered lines, a few hundred a second, until the test lets it finish (a file it looks for):
# it prints through both crashes however slow the machine is.
SCRIPT = (
    "i=0; while [ ! -f /tmp/finish ]; do echo line-$i; i=$((i+1));"
    " [ $((i % 50)) = 0 ] && sleep 0.1; done; echo end"
)


async def printed_lines(client: httpx.AsyncClient, user: User, sandbox_id: str, process_id: str) -> int:
    return text_of(await all_output(client, user, sandbox_id, process_id)).count("\n")


async def test_output_and_status_survive_api_and_orchestrator_kills(tmp_path: Path, test_image: str) -> None:
    # A small agent buffer, so that the process really waits while the orchestrator is away.
    env = {"SBX_PROCESS_AGENT_BUFFER_BYTES": "65536"}
    async with dedicated_platform(tmp_path, services=("orchestrator", "api"), env=env) as own:
        plat = own.platform
        async with plat.client() as client:
            user = await signup(client)
            environment = await create_environment(client, user, test_image, cpu=0.5, memory=64)
            sandbox = await create_sandbox(client, user, environment["id"], "?wait=true&timeout=90")
            assert sandbox["status"] == "running", sandbox
            sid = sandbox["id"]
            process = await start(client, user, sid, SCRIPT)
            pid = process["id"]

            async def some_output() -> bool:
                return await printed_lines(client, user, sid, pid) > 0

            await wait_for(some_output, what="the first lines stored")

        plat.kill_service("api")  # SIGKILL, mid-print
        plat.start_service("api")
        async with plat.client() as client:
            seen = await printed_lines(client, user, sid, pid)

            async def more_output() -> bool:
                return await printed_lines(client, user, sid, pid) > seen

            await wait_for(more_output, what="output stored after the API restart")
            assert (await get(client, user, sid, pid))["status"] == "running", "ended before the second crash"

            plat.kill_service("orchestrator")  # SIGKILL, mid-print
            plat.start_service("orchestrator")
            seen = await printed_lines(client, user, sid, pid)
            await wait_for(more_output, what="output stored after the orchestrator restart")

            async def finished() -> bool:
                response = await client.post(
                    f"/sandboxes/{sid}/exec",
                    json={"command": "mkdir -p /tmp && touch /tmp/finish"},
                    headers=user.headers,
                )
                return response.status_code == 200 and response.json()["data"]["exitCode"] == 0

            await wait_for(finished, what="the process told to finish")
            ended = await wait_ended(client, user, sid, pid, timeout=90)
            assert (ended["status"], ended["exitCode"], ended["signal"]) == ("exited", 0, None)

            chunks = await all_output(client, user, sid, pid)
            assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1)), "a seq missing or repeated"
            lines = text_of(chunks).split("\n")
            assert lines[-2:] == ["end", ""]
            assert lines[:-2] == [f"line-{i}" for i in range(len(lines) - 2)]
            frames, exit_frame = await read_socket(socket_url(plat.ws_url, user, sid, pid))
            assert [f["seq"] for f in frames] == [c["seq"] for c in chunks]
            assert exit_frame == {"type": "exit", "status": "exited", "exitCode": 0, "signal": None}
