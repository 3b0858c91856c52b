"""The port proxy on the real platform: HTTP and WebSocket to ports of a running busybox sandbox
through `/sandboxes/:id/ports/:port/...`, with the owner's credentials."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import docker
import httpx
import pytest
import websockets

from tests.ports.conftest import HTTP_PORT, WS_PORT, start_web_sandbox
from tests.support.api import User, error_of, signup
from tests.support.docker import sandbox_address
from tests.support.platform import Platform, extra_api
from tests.support.sandboxes import exec_in, lifecycle
from tests.support.sockets import close_code_of, ws_connect, ws_url
from tests.support.waiting import wait_for


def port_path(sandbox: dict[str, Any], port: int, rest: str = "") -> str:
    return f"/sandboxes/{sandbox['id']}/ports/{port}/{rest}"


def seen_headers(text: str) -> dict[str, str]:
    """The echo server's GET /headers answer: its request line, then `name: value` lines."""
    lines = text.splitlines()
    found = {"request-line": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        found[name] = value
    return found


async def raw_request(platform: Platform, request_line: str, token: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client library normalising it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.api_port)
    head = f"{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


async def test_get_reaches_the_sandboxs_http_server(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any]
) -> None:
    answer = await api.get(port_path(web_sandbox, HTTP_PORT), headers=owner.headers)
    assert answer.status_code == 200
    assert answer.text == "hello-from-sandbox\n"
    assert "x-trace-id" in answer.headers


async def test_post_streams_a_large_body_both_ways_with_the_query(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any]
) -> None:
    body = os.urandom(4 * 1024 * 1024 + 17)

    async def chunks() -> Any:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    answer = await api.post(
        port_path(web_sandbox, HTTP_PORT, "cgi-bin/echo?x=1&y=%2F&z=a+b"),
        content=chunks(),
        headers={**owner.headers, "Content-Length": str(len(body))},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["x-method"] == "POST"
    assert answer.headers["x-query"] == "x=1&y=%2F&z=a+b"
    assert answer.content == body


async def test_headers_go_through_but_the_platforms_credentials(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any]
) -> None:
    answer = await api.get(
        port_path(web_sandbox, WS_PORT, "headers?q=1"),
        headers={
            **owner.headers,
            "X-Custom": "kept",
            "Cookie": "app=1; sbx_preview=x",
            "X-Forwarded-For": "6.6.6.6",
        },
    )
    assert answer.status_code == 200
    seen = seen_headers(answer.text)
    assert seen["request-line"] == "GET /headers?q=1"
    assert seen["x-custom"] == "kept"
    assert seen["cookie"] == "app=1"
    assert "authorization" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == urlsplit(str(api.base_url)).netloc
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-prefix"] == f"/sandboxes/{web_sandbox['id']}/ports/{WS_PORT}"


COOKIE_CGI = """cat > /tmp/www/cgi-bin/cookie <<'END'
#!/bin/sh
echo 'Set-Cookie: sbx_preview=planted; Path=/'
echo 'Set-Cookie: app=1'
echo
echo ok
END
chmod +x /tmp/www/cgi-bin/cookie"""


async def test_the_sandbox_cannot_set_the_preview_cookie(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any]
) -> None:
    """A CGI of the sandbox tries to set the platform's cookie beside its own."""
    await exec_in(api, owner, web_sandbox["id"], COOKIE_CGI)
    answer = await api.get(port_path(web_sandbox, HTTP_PORT, "cgi-bin/cookie"), headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers.get_list("set-cookie") == ["app=1"]


async def test_a_redirect_of_the_sandbox_stays_under_the_proxy(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any]
) -> None:
    answer = await api.get(port_path(web_sandbox, HTTP_PORT, "sub"), headers=owner.headers)
    assert answer.status_code in (301, 302), answer.text
    assert answer.headers["location"] == f"/sandboxes/{web_sandbox['id']}/ports/{HTTP_PORT}/sub/"
    followed = await api.get(answer.headers["location"], headers=owner.headers)
    assert followed.text == "in-sub\n"


async def test_websocket_echo_text_binary_and_close(
    platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    url = ws_url(platform.ws_url, port_path(web_sandbox, WS_PORT, "echo"), owner.token)
    async with ws_connect(url, subprotocols=["echo.v1"]) as socket:  # type: ignore[list-item]
        assert socket.subprotocol == "echo.v1"
        await socket.send("hello through the proxy")
        assert await socket.recv() == "hello through the proxy"
        blob = os.urandom(200_000)
        await socket.send(blob)
        assert await socket.recv() == blob
        await socket.send("close-me")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 15)
        assert socket.close_code == 4321
        assert socket.close_reason == "bye"


async def test_nothing_listening_is_502_and_close_1014(
    api: httpx.AsyncClient, platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    answer = await api.get(port_path(web_sandbox, 8081, "x"), headers=owner.headers)
    error_of(answer, 502, "UPSTREAM_UNAVAILABLE")
    url = ws_url(platform.ws_url, port_path(web_sandbox, 8081), owner.token)
    assert await close_code_of(url) == 1014


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "080800"])
async def test_a_bad_port_is_400(
    api: httpx.AsyncClient, owner: User, web_sandbox: dict[str, Any], port: str
) -> None:
    answer = await api.get(f"/sandboxes/{web_sandbox['id']}/ports/{port}/", headers=owner.headers)
    error_of(answer, 400, "VALIDATION_ERROR")


async def test_credentials_are_required_and_another_users_sandbox_is_404(
    api: httpx.AsyncClient, platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    error_of(await api.get(port_path(web_sandbox, HTTP_PORT)), 401, "UNAUTHORIZED")
    stranger = await signup(api)
    error_of(await api.get(port_path(web_sandbox, HTTP_PORT), headers=stranger.headers), 404, "NOT_FOUND")
    url = ws_url(platform.ws_url, port_path(web_sandbox, WS_PORT), stranger.token)
    assert await close_code_of(url) == 4004
    assert await close_code_of(ws_url(platform.ws_url, port_path(web_sandbox, WS_PORT), "nope")) == 4001
    error_of(
        await api.get("/sandboxes/00000000-0000-0000-0000-000000000000/ports/80/", headers=owner.headers),
        404,
        "NOT_FOUND",
    )


async def test_path_tricks_reach_nothing_else(
    platform: Platform, owner: User, web_sandbox: dict[str, Any]
) -> None:
    sid = web_sandbox["id"]
    # Dot segments, plain or escaped, are refused rather than passed on.
    for path in (
        f"/sandboxes/{sid}/ports/{WS_PORT}/../../other",
        f"/sandboxes/{sid}/ports/{WS_PORT}/a/%2e%2e/%2E%2E/headers",
        f"/sandboxes/{sid}/ports/{WS_PORT}/%2F..%2F..%2Fheaders/..",
    ):
        status, _ = await raw_request(platform, f"GET {path} HTTP/1.1", owner.token)
        assert status == 400, path
    # An id or port written with escapes (so that routing and the raw path could disagree).
    status, _ = await raw_request(
        platform, f"GET /sandboxes/{sid}/ports/90%30%30/headers HTTP/1.1", owner.token
    )
    assert status == 400
    status, _ = await raw_request(
        platform, f"GET /sandboxes/{sid}%2Fports%2F{WS_PORT}/ports/{HTTP_PORT}/headers HTTP/1.1", owner.token
    )
    assert status in (400, 404)
    # An escaped slash inside the sandbox's own path goes to the sandbox, byte for byte.
    status, body = await raw_request(
        platform, f"GET /sandboxes/{sid}/ports/{WS_PORT}/a%2Fb HTTP/1.1", owner.token
    )
    assert status == 200
    assert body.decode().splitlines()[0] == "GET /a%2Fb"
    # An absolute URL in the request line: its host is ignored; the sandbox's port answers.
    status, body = await raw_request(
        platform, f"GET http://169.254.169.254/sandboxes/{sid}/ports/{WS_PORT}/headers HTTP/1.1", owner.token
    )
    assert status == 200
    assert body.decode().splitlines()[0] == "GET /headers"


async def recorded_address(pg: asyncpg.Connection, sandbox_id: str) -> str | None:
    address: str | None = await pg.fetchval(
        "SELECT host(address) FROM sandbox_runtime WHERE sandbox_id = $1", uuid.UUID(sandbox_id)
    )
    return address


async def test_a_stopped_sandbox_is_409_not_running(
    api: httpx.AsyncClient,
    *,
    platform: Platform,
    owner: User,
    web_environment: dict[str, Any],
    pg: asyncpg.Connection,
    docker_client: docker.DockerClient,
) -> None:
    sandbox = await start_web_sandbox(api, owner, web_environment)
    # The orchestrator records the container's address on the sandbox bridge while it runs.
    bridge = sandbox_address(docker_client, sandbox["id"], platform.base_env["SBX_INSTANCE"])
    assert bridge is not None
    assert await recorded_address(pg, sandbox["id"]) == bridge
    await lifecycle(api, owner, sandbox["id"], "stop")
    assert await recorded_address(pg, sandbox["id"]) is None
    error_of(await api.get(port_path(sandbox, HTTP_PORT), headers=owner.headers), 409, "NOT_RUNNING")
    answer = await api.post(
        f"/sandboxes/{sandbox['id']}/ports/{HTTP_PORT}/preview-url", headers=owner.headers
    )
    error_of(answer, 409, "NOT_RUNNING")
    assert await close_code_of(ws_url(platform.ws_url, port_path(sandbox, WS_PORT), owner.token)) == 4009
    await lifecycle(api, owner, sandbox["id"], "destroy")


async def test_fair_use_sockets_per_owner_and_refusals_per_ip(
    platform: Platform, owner: User, web_sandbox: dict[str, Any], tmp_path: Path
) -> None:
    """Proxied sockets count against the sandbox's owner (close 4029 at the cap); refused proxied
    requests count against the caller's IP like any unauthenticated request."""
    # This API's own limiter (memory): the shared one in PostgreSQL already holds this minute's
    # requests from 127.0.0.1 made by the rest of the suite.
    settings = {
        "SBX_MAX_PROXY_SOCKETS_PER_USER": "1",
        "SBX_RATE_LIMIT_PER_MINUTE": "3",
        "SBX_RATE_LIMIT_STORAGE": "memory",
    }
    async with extra_api(platform, tmp_path, **settings) as other:
        ws_base = str(other.base_url).replace("http://", "ws://").rstrip("/")
        url = ws_url(ws_base, port_path(web_sandbox, WS_PORT, "one"), owner.token)
        async with ws_connect(url) as first:
            await first.send("held")
            assert await first.recv() == "held"
            assert await close_code_of(url) == 4029

        async def echoed_once_free() -> bool:
            # The first socket's hold is released as its close is handled: wait for that.
            try:
                async with ws_connect(url) as again:
                    await again.send("free again")
                    return await again.recv() == "free again"
            except websockets.ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code == 4029:
                    return False
                raise

        assert await wait_for(echoed_once_free, what="a proxied socket once the first is closed")
        statuses = [(await other.get(port_path(web_sandbox, HTTP_PORT))).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
