"""Terminal sessions end on their own: after the idle timeout, and when the API side is gone.

On a platform of its own, with timeouts of a few seconds.
"""

from __future__ import annotations

import asyncio

import docker

from tests.streams.clients import open_terminal, terminal_url
from tests.support.api import signup
from tests.support.docker import TEST_IMAGE
from tests.support.platform import DedicatedPlatform
from tests.support.sandboxes import run_sandbox
from tests.support.waiting import wait_for

DEDICATED_SERVICES = ("orchestrator", "api")
DEDICATED_ENV = {
    "SBX_TERMINAL_IDLE_TIMEOUT": "2",
    "SBX_TERMINAL_KEEPALIVE_TIMEOUT": "3",
    "SBX_TERMINAL_KEEPALIVE_SECONDS": "1",
}


async def _open_sessions(plat: DedicatedPlatform) -> float:
    text = await plat.platform.metrics("orchestrator")
    for line in text.splitlines():
        if line.startswith("orchestrator_terminal_sessions "):
            return float(line.split()[1])
    raise AssertionError("orchestrator_terminal_sessions is not exported")


async def test_an_idle_terminal_is_closed(dedicated_platform: DedicatedPlatform) -> None:
    plat = dedicated_platform
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, TEST_IMAGE, "sleep 600")
        url = terminal_url(plat.platform.ws_url, user, sandbox["id"])
        async with open_terminal(url) as term:
            await term.type("echo still-here\n")
            await term.expect("still-here")
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await term.closed(timeout=15) == 1000
            assert term.socket.close_reason is not None
            assert "idle" in term.socket.close_reason
            assert loop.time() - started >= 1.5


async def test_a_session_whose_api_went_away_is_ended(dedicated_platform: DedicatedPlatform) -> None:
    plat = dedicated_platform
    async with plat.client() as client:
        user = await signup(client)
        sandbox = await run_sandbox(client, user, TEST_IMAGE, "sleep 600")
        url = terminal_url(plat.platform.ws_url, user, sandbox["id"])
        try:  # the module's later tests need an API, whatever happens here
            async with open_terminal(url) as term:
                await term.type("top\n")  # output all the time: never idle
                await term.expect("PID")
                assert await _open_sessions(plat) == 1
                plat.platform.kill_service("api")  # no close, no more keepalives

                async def ended() -> bool:
                    return await _open_sessions(plat) == 0

                await wait_for(ended, timeout=15, interval=0.5)
        finally:
            plat.platform.start_service("api")

    container = docker.from_env().containers.get(f"sbx-{sandbox['id']}")

    def top_is_gone() -> bool:
        return not any("top" in " ".join(p) for p in container.top()["Processes"])

    async def gone() -> bool:
        return await asyncio.to_thread(top_is_gone)

    await wait_for(gone, timeout=10, interval=0.5)
