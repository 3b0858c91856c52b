"""Fixtures of the sandbox tests: an environment of the test's user, whose sandboxes are all
destroyed when the test ends (with a Docker safety net)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sbx_common.labels import INSTANCE, OWNER_ID

from tests.support.api import User, create_environment
from tests.support.docker import remove_containers
from tests.support.platform import TEST_INSTANCE
from tests.support.sandboxes import destroy_all


@pytest.fixture
async def environment(
    client: httpx.AsyncClient, user: User, test_image: str
) -> AsyncIterator[dict[str, Any]]:
    """A small environment of `user` on the busybox test image, serving HTTP on port 8080."""
    env = await create_environment(
        client,
        user,
        test_image,
        cpu=0.5,
        memory=64,
        ports=[{"container": 8080}],
        env={"GREETING": "hello", "SHARED": "from-environment"},
        command=[
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo hello-from-sandbox > /tmp/www/index.html"
            " && echo booted && echo ready >&2 && exec httpd -f -p 8080 -h /tmp/www",
        ],
    )
    yield env
    await destroy_all(client, user)
    remove_containers(f"{INSTANCE}={TEST_INSTANCE}", f"{OWNER_ID}={user.id}")
