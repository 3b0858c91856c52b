"""Docker's archive API spoken on the engine's socket (sbx_orchestrator.engine.archive_http),
against the real engine: the bytes arrive whole, and every failure is the contract's error,
not a broken pipe or a hang."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
from sbx_orchestrator.engine import archive_http
from sbx_orchestrator.engine.files_common import FileOpError

MIB = 1024 * 1024
ENDPOINT = archive_http.endpoint_of(None, tls=False)


@pytest.fixture
def container(docker_client: docker.DockerClient, test_image: str) -> Iterator[str]:
    made = docker_client.containers.run(
        test_image, ["sleep", "600"], detach=True, labels={"sbx.test": "archive"}
    )
    yield made.id
    made.remove(force=True)


def one_entry(name: str, size: int) -> tuple[bytes, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info.tobuf(tarfile.PAX_FORMAT), b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024


async def pieces(header: bytes, count: int, padding: bytes = b"") -> AsyncIterator[bytes]:
    yield header
    for index in range(count):
        yield hashlib.sha256(index.to_bytes(4, "big")).digest() * (MIB // 32)
    if padding:
        yield padding


async def test_a_file_goes_in_and_comes_out_whole(docker_client: docker.DockerClient, container: str) -> None:
    assert ENDPOINT is not None
    version = docker_client.api.api_version
    header, padding = one_entry("data.bin", 8 * MIB)
    length = len(header) + 8 * MIB + len(padding)
    await archive_http.put_archive(
        ENDPOINT, version, container, "/", length=length, body=pieces(header, 8, padding)
    )
    expected = b"".join([piece async for piece in pieces(b"", 8)])
    async with archive_http.get_archive(ENDPOINT, version, container, "/data.bin") as tar:
        answer = await tar.rest(limit=16 * MIB)  # HTTP/1.0: the whole tar, then the engine closes
    with tarfile.open(fileobj=io.BytesIO(answer)) as archive:
        member = archive.extractfile("data.bin")
        assert member is not None
        assert member.read() == expected


async def test_a_missing_directory_is_not_found_even_mid_body(
    docker_client: docker.DockerClient, container: str
) -> None:
    """The engine refuses as soon as it reads the request, while 64 MiB are still being sent."""
    assert ENDPOINT is not None
    header, padding = one_entry("x", 64 * MIB)
    with pytest.raises(FileOpError) as refused:
        await archive_http.put_archive(
            ENDPOINT,
            docker_client.api.api_version,
            container,
            "/no/such/directory",
            length=len(header) + 64 * MIB + len(padding),
            body=pieces(header, 64, padding),
        )
    assert refused.value.code == "NOT_FOUND"
    with pytest.raises(FileOpError) as missing:
        async with archive_http.get_archive(
            ENDPOINT, docker_client.api.api_version, container, "/no/such/file"
        ):
            pass
    assert missing.value.code == "NOT_FOUND"


async def test_a_body_shorter_than_declared_is_refused_without_waiting(
    docker_client: docker.DockerClient, container: str
) -> None:
    assert ENDPOINT is not None
    header, padding = one_entry("short.bin", 4 * MIB)
    with pytest.raises(FileOpError) as short:
        await archive_http.put_archive(
            ENDPOINT,
            docker_client.api.api_version,
            container,
            "/",
            length=len(header) + 4 * MIB + len(padding),
            body=pieces(header, 2),  # half the data, no end of archive
        )
    assert short.value.code == "VALIDATION_ERROR"
