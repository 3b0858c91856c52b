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

LINES = 200
# A line every 10 ms, then quiet: long enough to cut the stream while lines still come.
COUNTER = f"i=0; while [ $i -lt {LINES} ]; do i=$((i+1)); echo line $i; usleep 10000; done; sleep 3600"


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
        drops = 0
        with sandbox.stream_logs(since=0) as stream:
            for line in stream:
                seen.append(line)
                if len(seen) in (20, 80, 140):
                    drops += proxy.drop()
                if line.text == f"line {LINES}":
                    break
        assert drops >= 3
        assert [line.seq for line in seen] == list(range(1, LINES + 1))
        assert [line.text for line in seen] == [f"line {i}" for i in range(1, LINES + 1)]


async def test_async_logs_stream_resumes_after_drops(
    sdk: Client, counter: Environment, proxy: TcpProxy
) -> None:
    async with AsyncClient(base_url=proxy.url, token=sdk.token) as client:
        async with client.sandboxes.create(counter.id) as sandbox:
            seen = []
            async with sandbox.stream_logs(tail=0) as stream:
                async for line in stream:
                    seen.append(line)
                    if len(seen) in (30, 100):
                        assert proxy.drop() >= 1
                    if line.text == f"line {LINES}":
                        break
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
