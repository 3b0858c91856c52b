"""Fixtures of the port proxy tests: the busybox test image with a WebSocket echo server, and one
running sandbox per module serving HTTP on 8080 (busybox httpd, with a CGI echo) and WebSocket
on 9000."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sbx_common.labels import INSTANCE, OWNER_ID

from tests.support.api import User, create_environment, signup
from tests.support.docker import IMAGES_DIR, remove_containers, remove_image
from tests.support.platform import TEST_INSTANCE, Platform
from tests.support.sandboxes import create_sandbox, destroy_all
from tests.support.waiting import wait_for

WSECHO_IMAGE = f"sbx-test-wsecho:{uuid.uuid4().hex[:10]}"
HTTP_PORT = 8080
WS_PORT = 9000

# The CGI echo: the request's method and query in headers, its body back as it came.
CGI_ECHO = """#!/bin/sh
echo "Content-Type: application/octet-stream"
echo "X-Method: $REQUEST_METHOD"
echo "X-Query: $QUERY_STRING"
echo
head -c "${CONTENT_LENGTH:-0}"
"""
SANDBOX_SCRIPT = (
    "mkdir -p /tmp/www/cgi-bin /tmp/www/sub"
    " && echo hello-from-sandbox > /tmp/www/index.html"
    " && echo in-sub > /tmp/www/sub/index.html"
    " && printf '%s' \"$CGI_ECHO\" > /tmp/www/cgi-bin/echo && chmod +x /tmp/www/cgi-bin/echo"
    f" && (wsecho :{WS_PORT} &) && exec httpd -f -p {HTTP_PORT} -h /tmp/www"
)


@pytest.fixture(scope="session")
def wsecho_image(test_image: str) -> Iterator[str]:
    """The test image plus the WebSocket echo server, built from tests/images/wsecho (Go,
    standard library only, linked static)."""
    with tempfile.TemporaryDirectory() as context:
        source = IMAGES_DIR / "wsecho"
        subprocess.run(
            ["go", "build", "-o", str(Path(context) / "wsecho"), str(source / "main.go")],
            check=True,
            capture_output=True,
            env={
                **os.environ,
                "CGO_ENABLED": "0",
                "GO111MODULE": "off",
                "GOCACHE": str(Path(context) / "cache"),
            },
        )
        shutil.copy(source / "Dockerfile", Path(context) / "Dockerfile")
        shutil.rmtree(Path(context) / "cache", ignore_errors=True)
        subprocess.run(
            ["docker", "build", "-q", "--build-arg", f"BASE={test_image}", "-t", WSECHO_IMAGE, context],
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    yield WSECHO_IMAGE
    remove_image(WSECHO_IMAGE)


@pytest.fixture(scope="module")
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as http:
        yield http


@pytest.fixture(scope="module")
async def owner(api: httpx.AsyncClient) -> AsyncIterator[User]:
    user = await signup(api)
    yield user
    await destroy_all(api, user)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")


@pytest.fixture(scope="module")
async def web_environment(api: httpx.AsyncClient, owner: User, wsecho_image: str) -> dict[str, Any]:
    return await create_environment(
        api,
        owner,
        wsecho_image,
        cpu=0.5,
        memory=64,
        env={"CGI_ECHO": CGI_ECHO},
        command=["sh", "-c", SANDBOX_SCRIPT],
    )


async def start_web_sandbox(
    api: httpx.AsyncClient, owner: User, environment: dict[str, Any]
) -> dict[str, Any]:
    """A running sandbox of the web environment, once both its servers answer through the proxy."""
    sandbox = await create_sandbox(api, owner, environment["id"], "?wait=true&timeout=60")
    assert sandbox["status"] == "running", sandbox

    async def serving() -> bool:
        for port in (HTTP_PORT, WS_PORT):
            answer = await api.get(f"/sandboxes/{sandbox['id']}/ports/{port}/", headers=owner.headers)
            if answer.status_code != 200:
                return False
        return True

    await wait_for(serving, timeout=30, what="the sandbox's servers answer")
    return sandbox


@pytest.fixture(scope="module")
async def web_sandbox(api: httpx.AsyncClient, owner: User, web_environment: dict[str, Any]) -> dict[str, Any]:
    """The module's one running web sandbox."""
    return await start_web_sandbox(api, owner, web_environment)
