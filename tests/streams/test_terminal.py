"""`/ws/sandboxes/:id/terminal`: a real shell with a PTY, through the API and the orchestrator."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.streams.clients import open_terminal, terminal_url
from tests.support.api import User
from tests.support.platform import Platform
from tests.support.sandboxes import Sandboxes, exec_in, lifecycle
from tests.support.sockets import close_code_of, ws_url
from tests.support.waiting import wait_for


async def test_terminal_runs_commands_and_applies_resize(
    platform: Platform, user: User, sandboxes: Sandboxes
) -> None:
    sandbox = await sandboxes.run(user, "sleep 600")
    async with open_terminal(terminal_url(platform.ws_url, user, sandbox["id"], cols=120, rows=40)) as term:
        await term.type("echo $((6 * 7))\n")
        await term.expect("42")
        await term.type("stty size\n")
        await term.expect("40 120")
        await term.control(type="resize", cols=100, rows=37)
        await term.type("stty size; echo $TERM\n")
        await term.expect("37 100")
        await term.expect("xterm-256color")
        await term.type(b"echo bin-$((1 + 1))\n")  # binary frames are keystrokes too
        await term.expect("bin-2")
        await term.control(type="ping")
        await term.expect('<text:{"type":"pong"}>')
        await term.type("printf '\\001\\377\\n'\n")  # bytes that are not UTF-8 come through
        await term.expect("\x01\ufffd")
        await term.type("exit\n")
        assert await term.closed() == 1000


async def test_terminal_handles_an_interactive_program(
    platform: Platform, user: User, sandboxes: Sandboxes, client: httpx.AsyncClient
) -> None:
    sandbox = await sandboxes.run(user, "sleep 600")
    async with open_terminal(terminal_url(platform.ws_url, user, sandbox["id"])) as term:
        await term.type("vi /notes\n")
        await term.expect("- /notes")  # vi's status line, in command mode
        await term.type("i")
        await term.expect("I /notes")  # insert mode
        await term.type("hello from vi")
        await term.expect("hello from vi")
        # Escape: vi waits briefly for more keys of an escape sequence, so `:` typed before it
        # has given up would be read as part of one. Its status line back in command mode says
        # it has.
        await term.type("\x1b")
        await term.expect("- /notes")
        await term.type(":wq\r")
        await term.type("cat /notes\n")
        await term.expect("hello from vi\r\n")
        await term.type("vi /notes\n")
        await term.expect("- /notes")  # vi is up, in command mode
        await term.type(":q!\r")
        await term.type("echo back-in-shell\n")
        await term.expect("back-in-shell\r\n")
        # Leaving with vi still open ends it (the shell is hung up like a closed terminal).
        await term.type("vi /other\n")
        await term.expect("- /other")  # vi is up (not just the command line echoed)

    async def vi_gone() -> bool:
        result = await exec_in(client, user, sandbox["id"], "ps")
        return " vi " not in result["stdout"] and "vi /other" not in result["stdout"]

    await wait_for(vi_gone, timeout=15, interval=0.5)


async def test_many_sessions_at_once(platform: Platform, user: User, sandboxes: Sandboxes) -> None:
    """Six shells at once, four on one sandbox and two on another: each sees only its own."""
    first, second = await asyncio.gather(
        sandboxes.run(user, "echo first > /whoami; sleep 600"),
        sandboxes.run(user, "echo second > /whoami; sleep 600"),
    )
    names = [f"s{i}" for i in range(6)]

    async def session(sandbox_id: str, name: str, expected_host: str) -> None:
        async with open_terminal(terminal_url(platform.ws_url, user, sandbox_id)) as term:
            await term.type(f"echo {name}-$((3 * 3)) $(cat /whoami)\n")
            seen = await term.expect(f"{name}-9 {expected_host}")
            assert all(f"{other}-9" not in seen for other in names if other != name)

    await asyncio.gather(
        *(session(first["id"], name, "first") for name in names[:4]),
        *(session(second["id"], name, "second") for name in names[4:]),
    )


async def test_terminal_refusals_and_a_stopping_sandbox(
    platform: Platform, user: User, other_user: User, sandboxes: Sandboxes, client: httpx.AsyncClient
) -> None:
    sandbox = await sandboxes.run(user, "sleep 600")
    path = f"/ws/sandboxes/{sandbox['id']}/terminal"
    assert await close_code_of(ws_url(platform.ws_url, path, "not-a-token")) == 4001
    assert await close_code_of(f"{platform.ws_url}{path}") == 4001
    assert await close_code_of(terminal_url(platform.ws_url, other_user, sandbox["id"])) == 4004
    assert await close_code_of(terminal_url(platform.ws_url, user, str(uuid.uuid4()))) == 4004

    # The sandbox stops while a terminal is open: the socket closes with 4009.
    async with open_terminal(terminal_url(platform.ws_url, user, sandbox["id"])) as term:
        await lifecycle(client, user, sandbox["id"], "stop")
        assert await term.closed() == 4009
    # And a stopped sandbox has no terminal.
    assert await close_code_of(terminal_url(platform.ws_url, user, sandbox["id"])) == 4009


async def test_line_mode_ends_each_text_frame_with_enter(
    platform: Platform, user: User, sandboxes: Sandboxes
) -> None:
    """`mode=line` is for wscat, which sends each line without its newline."""
    sandbox = await sandboxes.run(user, "sleep 600")
    assert await close_code_of(terminal_url(platform.ws_url, user, sandbox["id"], mode="bogus")) == 1008
    async with open_terminal(terminal_url(platform.ws_url, user, sandbox["id"], mode="line")) as term:
        await term.type("echo $((6 * 7))")
        await term.expect("42\r\n")
        await term.control(type="resize", cols=100, rows=37)  # commands are not typed
        await term.control(type="ping")
        await term.expect('<text:{"type":"pong"}>')
        await term.type("stty size")
        await term.expect("37 100\r\n")
        await term.type(b"echo bin-$((1 + 1))")  # binary frames stay byte-exact: no Enter yet
        await term.type(b"-more\n")
        await term.expect("bin-2-more\r\n")
        await term.type("exit")
        assert await term.closed() == 1000

    # Without it, a text frame is only keystrokes: nothing runs until the client sends Enter.
    async with open_terminal(terminal_url(platform.ws_url, user, sandbox["id"])) as term:
        await term.type("echo $((6 * 7))")
        await term.type("-raw")
        await term.type("\r")
        await term.expect("42-raw\r\n")
