"""Background processes from the Python SDK (sync and async) and the `sbx process` commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from sandbox_platform import AsyncClient, Client, OutputChunk, Sandbox

from tests.clients.python.support import PASSWORD, new_email
from tests.clients.python.test_cli import Run, cli_env, ok, runner
from tests.support.platform import Platform


# Numbered lines until the test lets it finish (a file it looks for), then "end".
def printer(tag: str) -> str:
    return f"i=1; while [ ! -f /finish-{tag} ]; do echo line-$i; i=$((i+1)); sleep 0.05; done; echo end"


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


class DroppingProxy:
    """A TCP proxy in front of the API whose open connections the test can cut at once (a
    dropped network path: the client sees its socket die without a close frame)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for each in (source, sink):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self._lock:
            cut, self.open = self.open, []
        for each in cut:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()
        self.dropped += len(cut) // 2

    def close(self) -> None:
        self.listener.close()
        self.drop()


@pytest.fixture
def proxy(platform: Platform) -> Iterator[DroppingProxy]:
    assert platform.api_port is not None
    dropping = DroppingProxy(platform.api_port)
    yield dropping
    dropping.close()


def _lines(chunks: list[OutputChunk]) -> list[str]:
    return "".join(chunk.text or "" for chunk in chunks).split()


def _assert_whole(chunks: list[OutputChunk]) -> None:
    """Every seq once, in order, and every line printed, then "end"."""
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    lines = _lines(chunks)
    assert lines[-1] == "end"
    assert lines[:-1] == [f"line-{i}" for i in range(1, len(lines))]


def test_stream_reattaches_from_the_last_seq(sdk: Client, sandbox: Sandbox, proxy: DroppingProxy) -> None:
    """`Process.stream()` follows the process's WebSocket; its connection cut, it opens the
    socket again from the last seq it received: nothing lost, nothing twice."""
    process = sandbox.processes.start(printer("sync"))
    with Client(base_url=proxy.url, token=sdk.token) as through_proxy:
        followed = through_proxy.sandboxes.get(sandbox.id).processes.get(process.id)
        stream = followed.stream()
        chunks = [next(stream) for _ in range(3)]
        proxy.drop()
        assert proxy.dropped >= 1
        assert sandbox.exec("touch /finish-sync").exit_code == 0
        chunks += list(stream)
    _assert_whole(chunks)
    # base64: the exact bytes, from any seq.
    exact = list(process.stream(since=len(chunks) - 1, encoding="base64"))
    assert [(c.seq, c.content()) for c in exact] == [(len(chunks), (chunks[-1].text or "").encode())]


async def test_async_stream_reattaches_from_the_last_seq(
    sdk: Client, sandbox: Sandbox, proxy: DroppingProxy
) -> None:
    process = sandbox.processes.start(printer("async"))
    async with AsyncClient(base_url=proxy.url, token=sdk.token) as through_proxy:
        found = await through_proxy.sandboxes.get(sandbox.id)
        stream = (await found.processes.get(process.id)).stream()
        chunks = [await anext(stream) for _ in range(3)]
        proxy.drop()
        assert proxy.dropped >= 1
        finished = await asyncio.to_thread(sandbox.exec, "touch /finish-async")
        assert finished.exit_code == 0
        chunks += [chunk async for chunk in stream]
    _assert_whole(chunks)


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
