"""The direct data connection of file transfers (`sbx_common.datachannel`), on real loopback
sockets: frames pass both ways, and a connection is accepted only for a transfer the
orchestrator expects, with that transfer's key, once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sbx_common import datachannel
from sbx_common.datachannel import DataListener, SocketChannel, new_key
from sbx_common.filestream import PeerFinished, TransferAborted

from tests.support.waiting import wait_for


@pytest.fixture
async def listener() -> DataListener:
    server = DataListener("127.0.0.1:0")
    await server.start()
    yield server  # type: ignore[misc]
    await server.stop()


def api_side(listener: DataListener, transfer: str, key: bytes) -> SocketChannel:
    async def connect() -> datachannel.Link:
        return await datachannel.connect(listener.address, transfer, key)

    return SocketChannel(connect=connect)


async def connected(listener: DataListener) -> tuple[SocketChannel, SocketChannel]:
    """A transfer the orchestrator expects, and the API's connection to it, both open."""
    transfer = uuid.uuid4().hex
    key, digest = new_key()
    orchestrator = listener.expect(transfer, digest)
    api = api_side(listener, transfer, key)
    await asyncio.gather(api.open(), orchestrator.open())
    return api, orchestrator


async def refused(listener: DataListener, transfer: str, hello_key: bytes) -> bool:
    """Whether the listener closes a connection that shows `hello_key` for `transfer`."""
    transport, protocol = await datachannel.connect(listener.address, transfer, hello_key)
    try:
        await asyncio.wait_for(protocol.lost.wait(), 10)
    except TimeoutError:
        return False
    finally:
        transport.abort()
    return True


async def test_an_upload_and_its_result_pass_on_the_expected_connection(listener: DataListener) -> None:
    api, orchestrator = await connected(listener)

    pieces = [bytes([n]) * datachannel.CHUNK for n in range(6)] + [b"tail"]
    received: list[bytes] = []

    async def consume() -> None:
        while (frame := await orchestrator.receive()).kind == "data":
            received.append(frame.data)
        assert frame.kind == "end"
        await orchestrator.result(b'{"ok":true}')

    consumer = asyncio.create_task(consume())
    for piece in pieces:
        await api.send(piece)
    await api.end()
    result = await api.receive()
    await consumer
    assert (result.kind, result.data) == ("result", b'{"ok":true}')
    assert received == pieces
    await asyncio.gather(api.close(), orchestrator.close())


async def test_a_wrong_key_an_unknown_transfer_and_a_second_connection_are_refused(
    listener: DataListener,
) -> None:
    transfer = uuid.uuid4().hex
    key, digest = new_key()
    orchestrator = listener.expect(transfer, digest)
    opened = asyncio.create_task(orchestrator.open())

    assert await refused(listener, transfer, new_key()[0])  # the wrong key
    assert await refused(listener, uuid.uuid4().hex, key)  # a transfer nobody expects
    assert not opened.done()  # neither took the expected transfer's place

    api = api_side(listener, transfer, key)
    await api.open()
    await opened
    assert await refused(listener, transfer, key)  # the key works once

    await orchestrator.send(b"down")
    await orchestrator.end()
    assert (await api.receive()).data == b"down"
    assert (await api.receive()).kind == "end"
    await asyncio.gather(api.close(), orchestrator.close())


async def test_a_connection_that_never_comes_ends_the_transfer(
    listener: DataListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datachannel, "ACCEPT_TIMEOUT", 0.5)
    orchestrator = listener.expect(uuid.uuid4().hex, new_key()[1])
    with pytest.raises(TransferAborted):
        await orchestrator.open()


async def test_the_other_side_leaving_mid_transfer_aborts_it(listener: DataListener) -> None:
    api, orchestrator = await connected(listener)
    await api.send(b"partial")
    await api.cancel()
    assert (await orchestrator.receive()).data == b"partial"
    with pytest.raises(TransferAborted):
        await orchestrator.receive()
    await asyncio.gather(api.close(), orchestrator.close())


async def test_a_sender_learns_that_the_receiver_finished_early(listener: DataListener) -> None:
    """An upload refused midway (a full disk): the orchestrator answers and reads no more; the
    API's next send stops with PeerFinished instead of filling buffers forever."""
    api, orchestrator = await connected(listener)
    await api.send(b"first")
    assert (await orchestrator.receive()).data == b"first"

    async def keep_sending() -> None:
        while True:
            await api.send(bytes(datachannel.CHUNK))

    sending = asyncio.create_task(keep_sending())

    # The orchestrator reads no more: the API's writes back up until the kernel takes no more.
    async def held_back() -> bool:
        return sending.done() or api.unsent > 0

    await wait_for(held_back, timeout=30, what="the sender held back")
    assert not sending.done()
    await orchestrator.result(b'{"ok":false}')
    with pytest.raises(PeerFinished):
        await asyncio.wait_for(sending, 30)
    assert (await api.receive()).data == b'{"ok":false}'
    await asyncio.gather(api.close(), orchestrator.close())


async def test_empty_frames_in_a_row_keep_the_connection(listener: DataListener) -> None:
    """An empty data frame, then the end: each a header alone (a frame of no bytes)."""
    api, orchestrator = await connected(listener)
    await api.send(b"")
    await api.send(b"after")
    await api.end()
    assert [(await orchestrator.receive()).data for _ in range(2)] == [b"", b"after"]
    assert (await orchestrator.receive()).kind == "end"
    await orchestrator.result(b"done")
    assert (await api.receive()).data == b"done"
    await asyncio.gather(api.close(), orchestrator.close())


async def test_a_connection_that_says_nothing_is_closed(
    listener: DataListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datachannel, "ACCEPT_TIMEOUT", 0.5)
    host, port = datachannel.split_address(listener.address)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        assert await asyncio.wait_for(reader.read(1), 10) == b""  # closed by the listener
    except ConnectionResetError:
        pass  # closed by the listener, abruptly
    finally:
        writer.close()
