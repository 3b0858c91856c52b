"""Streaming end to end: a 200 MiB upload and download keep every service's memory flat, and a
client that leaves mid-transfer leaves nothing behind (no temporary file, no reading process)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.files.test_files import exercise_reads_and_writes, get, new_sandbox, put
from tests.support.api import User, data_of, error_of, signup
from tests.support.platform import Platform, extra_api
from tests.support.processes import tree_rss
from tests.support.sandboxes import destroy_all, exec_in
from tests.support.waiting import wait_for

MIB = 1024 * 1024
SIZE = 200 * MIB
FLAT = 100 * MIB  # the most a service may grow over its idle figure during the transfer
SERVICES = ("api", "orchestrator")


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> AsyncIterator[User]:
    user = await signup(client)
    yield user
    await destroy_all(client, user)


class PeakRss:
    """The highest resident memory of each service (its processes together: the API's workers
    are children of its parent) while the block runs."""

    def __init__(self, platform: Platform) -> None:
        self.pids = {}
        for name in SERVICES:
            process = platform.processes[name].process
            assert process is not None
            self.pids[name] = process.pid
        self.idle = {name: tree_rss(pid) for name, pid in self.pids.items()}
        self.peak = dict(self.idle)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], tree_rss(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def pattern(index: int) -> bytes:
    return hashlib.sha256(index.to_bytes(8, "big")).digest() * (MIB // 32)


async def body() -> AsyncIterator[bytes]:
    for index in range(SIZE // MIB):
        yield pattern(index)


async def test_large_upload_and_download_keep_memory_flat(
    client: httpx.AsyncClient, owner: User, platform: Platform, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    expected = hashlib.sha256()
    for index in range(SIZE // MIB):
        expected.update(pattern(index))
    url = f"/sandboxes/{sid}/files/content"
    with PeakRss(platform) as memory:
        made = data_of(
            await client.put(url, params={"path": "/big.bin"}, content=body(), headers=owner.headers), 201
        )
        assert made["size"] == SIZE
        got = hashlib.sha256()
        received = 0
        async with client.stream("GET", url, params={"path": "/big.bin"}, headers=owner.headers) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(SIZE)
            async for data in response.aiter_bytes():
                got.update(data)
                received += len(data)
    assert received == SIZE
    assert got.hexdigest() == expected.hexdigest()
    for name in SERVICES:
        grew = memory.peak[name] - memory.idle[name]
        assert grew < FLAT, f"{name} grew by {grew / MIB:.0f} MiB"


async def test_client_leaving_mid_upload_leaves_no_file(
    client: httpx.AsyncClient, owner: User, platform: Platform, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    data_of(
        await client.put(
            f"/sandboxes/{sid}/files/content",
            params={"path": "/up/keep.txt"},
            content=b"old",
            headers=owner.headers,
        ),
        201,
    )
    url = httpx.URL(platform.api_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"PUT /sandboxes/{sid}/files/content?path=/up/keep.txt HTTP/1.1\r\nHost: {url.host}\r\n"
        f"Authorization: Bearer {owner.token}\r\nContent-Length: {50 * MIB}\r\n\r\n"
    )
    writer.write(head.encode())
    for _ in range(10):
        writer.write(bytes(MIB))
        await writer.drain()

    async def uploading() -> bool:
        listing = await exec_in(client, owner, sid, "ls -a /up")
        return ".sbx-upload-" in listing["stdout"]

    await wait_for(uploading, timeout=30, what="the upload's temporary file")
    writer.close()
    reader.feed_eof()

    async def cleaned() -> bool:
        listing = await exec_in(client, owner, sid, "ls -a /up")
        return listing["stdout"].split() == [".", "..", "keep.txt"]

    await wait_for(cleaned, timeout=60, what="the temporary file removed")
    got = await client.get(
        f"/sandboxes/{sid}/files/content", params={"path": "/up/keep.txt"}, headers=owner.headers
    )
    assert got.content == b"old"


async def test_client_leaving_mid_download_stops_the_reading(
    client: httpx.AsyncClient, owner: User, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    made = await exec_in(
        client, owner, sid, "dd if=/dev/zero of=/zeros bs=1M count=64 2>/dev/null; echo done"
    )
    assert made["stdout"] == "done\n"
    async with client.stream(
        "GET", f"/sandboxes/{sid}/files/content", params={"path": "/zeros"}, headers=owner.headers
    ) as response:
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            break  # the client leaves after its first chunk

    async def reader_gone() -> bool:
        processes = await exec_in(client, owner, sid, "ps -o args | grep -c '^cat -- /zeros' || true")
        return processes["stdout"].strip() == "0"

    await wait_for(reader_gone, timeout=60, what="the reading command to end")
    error_of(
        await client.get(
            f"/sandboxes/{sid}/files/content",
            params={"path": "/zeros"},
            headers={**owner.headers, "Range": "bytes=99999999-"},
        ),
        416,
        "VALIDATION_ERROR",
    )


async def test_orchestrator_restarting_mid_upload_answers_503_and_leaves_no_file(
    client: httpx.AsyncClient, owner: User, platform: Platform, test_image: str
) -> None:
    sid = await new_sandbox(client, owner, test_image)
    data_of(await put(client, owner, sid, "/up/keep.txt", b"old"), 201)
    sent = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        for index in range(400):
            if index == 4:
                sent.set()
            yield bytes(MIB)
            await asyncio.sleep(0.05)

    upload = asyncio.create_task(
        client.put(
            f"/sandboxes/{sid}/files/content",
            params={"path": "/up/keep.txt"},
            content=slow_body(),
            headers=owner.headers,
        )
    )
    await asyncio.wait_for(sent.wait(), 30)
    await asyncio.to_thread(platform.restart_service, "orchestrator")
    response = await asyncio.wait_for(upload, 60)
    error_of(response, 503, "UNAVAILABLE")

    async def cleaned() -> bool:
        listing = await exec_in(client, owner, sid, "ls -a /up")
        return listing["stdout"].split() == [".", "..", "keep.txt"]

    await wait_for(cleaned, timeout=60, what="no temporary file left")
    assert (await get(client, owner, sid, "/up/keep.txt")).content == b"old"


async def test_transfers_on_nats_where_no_direct_connection_is_asked_for(
    client: httpx.AsyncClient, owner: User, platform: Platform, test_image: str, tmp_path: Path
) -> None:
    """An API with direct data connections off (`SBX_FILES_DIRECT=false`) moves the bytes on
    NATS instead: the same files, ranges and archives come out either way."""
    sid = await new_sandbox(client, owner, test_image)
    payload = os.urandom(3 * MIB + 5)
    async with extra_api(platform, tmp_path, SBX_FILES_DIRECT="false") as nats_only:
        await exercise_reads_and_writes(nats_only, owner, sid, "nats")
        data_of(await put(nats_only, owner, sid, "/nats/big.bin", payload), 201)
        assert (await get(client, owner, sid, "/nats/big.bin")).content == payload
        archive = await nats_only.get(
            f"/sandboxes/{sid}/files/archive", params={"path": "/nats"}, headers=owner.headers
        )
        assert archive.status_code == 200
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            member = tar.extractfile("nats/big.bin")
            assert member is not None
            assert member.read() == payload
