"""Ended sessions leave no shell behind even where the orchestrator cannot signal host PIDs, and
the API closes its sockets when the orchestrator dies.

On a platform of its own whose orchestrator never signals by host PID
(SBX_TERMINAL_HOST_SIGNALS=false, as on hosts without the host PID namespace): the hang-up is
sent from inside the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError
from sbx_common import subjects
from sbx_common.messages import TerminalControl

from tests.streams.clients import Terminal, open_terminal, terminal_url
from tests.support.api import User, signup
from tests.support.docker import TEST_IMAGE
from tests.support.nats_auth import admin_connect
from tests.support.platform import DedicatedPlatform
from tests.support.sandboxes import exec_in, run_sandbox
from tests.support.waiting import wait_for

DEDICATED_SERVICES = ("orchestrator", "api")
DEDICATED_ENV = {
    "SBX_TERMINAL_HOST_SIGNALS": "false",
    "SBX_TERMINAL_KEEPALIVE_SECONDS": "1",
}


async def _shell_pid(term: Terminal) -> int:
    await term.type("echo shell-pid=$$\n")
    seen = ""
    while not (match := re.search(r"shell-pid=(\d+)", seen)):
        seen += await term.expect("\n")
    return int(match.group(1))


async def _gone(client: httpx.AsyncClient, user: User, sandbox_id: str, pid: int) -> bool:
    result = await exec_in(client, user, sandbox_id, f"[ -d /proc/{pid} ] || echo gone; ls -a /dev/shm")
    return "gone" in result["stdout"] and ".sbx-terminal-" not in result["stdout"]


async def test_a_closed_session_hangs_its_shell_up_from_inside(dedicated_platform: DedicatedPlatform) -> None:
    plat = dedicated_platform
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, TEST_IMAGE, "sleep 600")
        url = terminal_url(plat.platform.ws_url, user, sandbox["id"])
        async with open_terminal(url) as term:
            pid = await _shell_pid(term)
            listing = await exec_in(client, user, sandbox["id"], "cat /dev/shm/.sbx-terminal-*")
            assert listing["stdout"].strip() == str(pid)
            await term.type("vi /notes\n")
            await term.expect("/notes")

        async def shell_and_vi_gone() -> bool:
            ps = (await exec_in(client, user, sandbox["id"], "ps"))["stdout"]
            vi_gone = " vi " not in ps and "vi /notes" not in ps
            return vi_gone and await _gone(client, user, sandbox["id"], pid)

        await wait_for(shell_and_vi_gone, timeout=15, interval=0.5)


async def test_a_shell_that_ignores_the_hang_up_is_killed(dedicated_platform: DedicatedPlatform) -> None:
    plat = dedicated_platform
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, TEST_IMAGE, "sleep 600")
        url = terminal_url(plat.platform.ws_url, user, sandbox["id"])
        async with open_terminal(url) as term:
            pid = await _shell_pid(term)
            await term.type("trap '' HUP; echo trapped\n")
            await term.expect("trapped\r\n")

        async def gone() -> bool:
            return await _gone(client, user, sandbox["id"], pid)

        await wait_for(gone, timeout=15, interval=0.5)


async def test_the_socket_closes_when_the_orchestrator_dies(dedicated_platform: DedicatedPlatform) -> None:
    plat = dedicated_platform
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, TEST_IMAGE, "sleep 600")
        url = terminal_url(plat.platform.ws_url, user, sandbox["id"])
        nc = await admin_connect(plat.nats_url, "tests-terminal-keepalives")
        try:
            async with _keepalive_answers(nc) as answered, open_terminal(url) as term:
                await term.type("echo alive\n")
                await term.expect("alive\r\n")
                # Only an orchestrator that has answered a keepalive is ever taken for gone.
                await wait_for(answered, timeout=15, what="a keepalive answered")
                plat.platform.kill_service("orchestrator")
                loop = asyncio.get_running_loop()
                killed_at = loop.time()
                # Three keepalive intervals (1 s) without an answer, then the close: seconds,
                # not the minutes of any other clean-up.
                assert await term.closed(timeout=30) == 1011
                assert loop.time() - killed_at < 15
                assert term.socket.close_reason is not None
                assert "stopped answering" in term.socket.close_reason
        finally:
            await nc.close()
            plat.platform.start_service("orchestrator")


@contextlib.asynccontextmanager
async def _keepalive_answers(nc: NatsClient) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """A probe: has the orchestrator answered one of the API's keepalive requests yet? Seen on the
    wire, the requests on the sessions' control subjects and the answers on their reply subjects."""
    requests: set[str] = set()
    answers: set[str] = set()

    def keepalive_from(msg: Msg, sender: str) -> bool:
        with contextlib.suppress(ValidationError):
            control = TerminalControl.model_validate_json(msg.data)
            return control.type == "keepalive" and control.sender == sender
        return False

    async def on_control(msg: Msg) -> None:
        if msg.reply and keepalive_from(msg, "api"):
            requests.add(msg.reply)

    async def on_reply(msg: Msg) -> None:
        if keepalive_from(msg, "orchestrator"):
            answers.add(msg.subject)

    async def answered() -> bool:
        return bool(requests & answers)

    subscriptions = [
        await nc.subscribe(subjects.terminal_control("*"), cb=on_control),
        await nc.subscribe("_INBOX.>", cb=on_reply),
    ]
    await nc.flush()
    try:
        yield answered
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()
