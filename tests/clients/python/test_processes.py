"""Background processes from the Python SDK (sync and async) and the `sbx process` commands."""

from __future__ import annotations

import json
import uuid

import pytest
from sandbox_platform import AsyncClient, Client, Sandbox

from tests.clients.python.support import PASSWORD, new_email
from tests.clients.python.test_cli import Run, cli_env, ok, runner


def test_sdk_starts_feeds_streams_and_signals_a_process(sandbox: Sandbox) -> None:
    process = sandbox.processes.start("echo hi; read x; echo got-$x", stdin=True)
    assert process.status == "running"
    assert process.send_stdin("yo\n", eof=True) == 3
    assert process.wait(timeout=30).exit_code == 0
    assert "".join(chunk.text or "" for chunk in process.stream()) == "hi\ngot-yo\n"
    page = process.output(since=0, limit=1, encoding="base64")
    assert page.data[0].content() == b"hi\n"
    assert page.next_since == 1
    assert process.id in [p.id for p in sandbox.processes.list()]

    sleeper = sandbox.processes.start(["sleep", "60"])
    sleeper.signal("KILL").wait(timeout=30)
    assert (sleeper.status, sleeper.exit_signal) == ("exited", "KILL")
    assert sandbox.processes.get(sleeper.id).exit_code == 137


async def test_async_sdk_has_the_same_surface(sdk: Client, sandbox: Sandbox) -> None:
    async with AsyncClient(base_url=sdk.base_url, token=sdk.token) as client:
        found = await client.sandboxes.get(sandbox.id)
        process = await found.processes.start(["sh", "-c", "echo one; echo two >&2"])
        await process.wait(timeout=30)
        chunks = [chunk async for chunk in process.stream()]
        assert {(c.stream, c.text) for c in chunks} == {("stdout", "one\n"), ("stderr", "two\n")}
        assert [p.id for p in await found.processes.list(status="exited")].count(process.id) == 1


@pytest.fixture(scope="module")
def cli(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = runner(cli_env(api_url, tmp_path_factory.mktemp("sbx-proc-config")))
    ok(run("signup", "--email", new_email(), "--password", PASSWORD))
    return run


def test_cli_process_commands(cli: Run, test_image: str) -> None:
    run = cli
    name = f"proc-{uuid.uuid4().hex[:8]}"
    ok(run("env", "create", name, "--image", test_image, "-q"))
    box = ok(run("create", name, "-q")).strip()
    try:
        done = run("process", "run", box, "--", "sh", "-c", "echo out; echo err >&2; exit 5")
        assert (done.returncode, done.stdout, done.stderr) == (5, "out\n", "err\n")
        pid = ok(run("process", "run", box, "-d", "--", "sleep", "60")).strip()
        uuid.UUID(pid)
        listed = json.loads(ok(run("process", "ls", box, "--status", "running", "--json")))
        assert pid in [p["id"] for p in listed]
        assert pid[:8] in ok(run("ps", box))
        ok(run("process", "kill", box, pid[:8], "--signal", "KILL"))
        attached = run("process", "attach", box, pid, "--no-stdin")
        assert attached.returncode == 137, attached.stderr
        echoed = run("process", "run", box, "--", "sh", "-c", "printf 'a\\nb\\n'")
        assert echoed.stdout == "a\nb\n"
        ids = json.loads(ok(run("process", "ls", box, "--json")))
        first = next(p for p in ids if p["command"] == ["sh", "-c", "printf 'a\\nb\\n'"])
        assert ok(run("process", "logs", box, first["id"], "--since", "0")) == "a\nb\n"
    finally:
        run("rm", box, "--no-wait")
