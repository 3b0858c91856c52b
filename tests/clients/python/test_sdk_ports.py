"""Ports and previews from the Python SDK (sync and async) and the `sbx` CLI, against a sandbox
serving HTTP on 8080 (busybox httpd)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sandbox_platform import AsyncClient, Client, Sandbox, UpstreamUnavailableError

from tests.clients.python.support import wait_until
from tests.clients.python.test_cli import cli_env, ok, runner

SERVE = "mkdir -p /tmp/www && echo hello-port > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"


@pytest.fixture(scope="module")
def web(sdk: Client, test_image: str) -> Iterator[Sandbox]:
    environment = sdk.environments.create(
        name=f"ports-{uuid.uuid4().hex[:8]}", image=test_image, command=["sh", "-c", SERVE]
    )
    with sdk.sandboxes.create(environment.id) as sandbox:
        wait_until(lambda: sandbox.port_request(8080).status_code == 200)
        yield sandbox
    sdk.environments.delete(environment.id)


def test_port_request_and_preview_url(web: Sandbox) -> None:
    answer = web.port_request(8080, "GET", "/index.html?x=1")
    assert answer.status_code == 200
    assert answer.text == "hello-port\n"
    assert web.port_request(8080, path="/missing").status_code == 404  # the sandbox's own answer
    with pytest.raises(UpstreamUnavailableError) as caught:
        web.port_request(8081)
    assert caught.value.status == 502
    link = web.get_preview_url(8080, expires_in_seconds=120)
    assert web.id in link.url
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        assert browser.get(link.url).text == "hello-port\n"
    assert web.port_url(8080, "a/b").endswith(f"/sandboxes/{web.id}/ports/8080/a/b")


async def test_async_port_request_and_preview_url(web: Sandbox, api_url: str, sdk: Client) -> None:
    async with AsyncClient(base_url=api_url, token=sdk.token) as client:
        sandbox = await client.sandboxes.get(web.id)
        answer = await sandbox.port_request(8080, "POST", "/", content=b"ignored")
        assert answer.status_code in (200, 405, 501)
        assert (await sandbox.port_request(8080)).text == "hello-port\n"
        link = await sandbox.get_preview_url(8080)
        assert "sbx_preview=" in link.url


def test_cli_preview_and_http(web: Sandbox, api_url: str, sdk: Client, tmp_path: Path) -> None:
    run = runner({**cli_env(api_url, tmp_path / "config"), "SBX_API_KEY": sdk.api_keys.create("cli").key})
    url = ok(run("preview", web.id, "8080", "--expires", "300")).strip()
    assert url.startswith(f"{api_url}/sandboxes/{web.id}/ports/8080/?sbx_preview=")
    assert ok(run("http", web.id, "8080", "/index.html")) == "hello-port\n"
    missing = run("http", web.id, "8080", "/nope", "-i")
    assert missing.returncode == 1
    assert "HTTP/1.1 404" in missing.stderr
    refused = run("http", web.id, "8081")
    assert refused.returncode != 0
    assert "UPSTREAM_UNAVAILABLE" in refused.stderr
