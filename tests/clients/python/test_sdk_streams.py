"""Dropped connections: the logs socket and the events stream resume where they were, with no
line or event lost or repeated. The client talks to the API through a TCP proxy that the test
cuts mid-stream, as a network failure would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sandbox_platform import AsyncClient, Client, Environment

from tests.clients.python.support import TcpProxy

LINES = 400
# A line every 10 ms, then quiet: long enough to cut the stream several times while lines still
# come.
COUNTER = f"i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo line $i; usleep 10000; done; sleep 3600"


class Cutter:
    """Cuts the stream's connection after `first` lines, then again `apart` lines later, but only
    once the client has connected again: lines that came in one frame are still read from the
    client's buffer after a cut, and a cut then would find no connection to cut."""

    def __init__(self, proxy: TcpProxy, first: int, apart: int) -> None:
        self.proxy = proxy
        self.due = first
        self.apart = apart
        self.connections = proxy.accepted
        self.drops = 0

    def after(self, lines: int) -> None:
        if lines >= self.due and self.proxy.accepted > self.connections:
            self.connections = self.proxy.accepted
            if self.proxy.drop():
                self.drops += 1
            self.due = lines + self.apart


@pytest.fixture(scope="module")
def proxy(api_url: str) -> Iterator[TcpProxy]:
    tcp = TcpProxy(urlsplit(api_url).port or 80)
    yield tcp
    tcp.close()


@pytest.fixture(scope="module")
def counter(sdk: Client, test_image: str) -> Environment:
    return sdk.environments.create(
        name=f"counter-{uuid.uuid4().hex[:8]}", image=test_image, command=["sh", "-c", COUNTER]
    )


def test_logs_stream_resumes_after_drops(sdk: Client, counter: Environment, proxy: TcpProxy) -> None:
    client = Client(base_url=proxy.url, token=sdk.token)
    with client.sandboxes.create(counter.id) as sandbox:
        seen = []
        cutter = Cutter(proxy, first=20, apart=40)
        with sandbox.stream_logs(since=0) as stream:
            for line in stream:
                seen.append(line)
                cutter.after(len(seen))
                if line.text == f"line {LINES}":
                    break
        assert cutter.drops >= 3
        assert [line.seq for line in seen] == list(range(1, LINES + 1))
        assert [line.text for line in seen] == [f"line {i}" for i in range(1, LINES + 1)]


async def test_async_logs_stream_resumes_after_drops(
    sdk: Client, counter: Environment, proxy: TcpProxy
) -> None:
    async with AsyncClient(base_url=proxy.url, token=sdk.token) as client:
        async with client.sandboxes.create(counter.id) as sandbox:
            seen = []
            cutter = Cutter(proxy, first=30, apart=40)
            async with sandbox.stream_logs(tail=0) as stream:
                async for line in stream:
                    seen.append(line)
                    cutter.after(len(seen))
                    if line.text == f"line {LINES}":
                        break
            assert cutter.drops >= 2
    texts = [line.text for line in seen]
    # tail=0: only lines printed after the stream opened, then every one of them once.
    first = int(texts[0].split()[1])
    assert texts == [f"line {i}" for i in range(first, LINES + 1)]
    assert [line.seq for line in seen] == list(range(first, LINES + 1))


def test_events_stream_resumes_after_a_drop(sdk: Client, environment: Environment, proxy: TcpProxy) -> None:
    client = Client(base_url=proxy.url, token=sdk.token)
    with sdk.sandboxes.create(environment.id) as sandbox, client.events() as events:
        sandbox.stop(wait=False)
        first = next(events)
        assert first.sandbox_id == sandbox.id
        assert proxy.drop() >= 1
        sandbox.wait(status="stopped")
        sandbox.destroy()
        seen = [first]
        for event in events:
            if event.sandbox_id == sandbox.id:
                seen.append(event)
            if event.status == "destroyed":
                break
    ids = [int(event.id) for event in seen]
    assert ids == sorted(set(ids))
    assert [event.status for event in seen] == ["stopping", "stopped", "destroying", "destroyed"]
