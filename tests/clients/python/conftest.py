"""Fixtures of the Python client tests: an SDK client signed up as a fresh user, an environment
on the test image, and one running sandbox shared by the tests of a module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sandbox_platform import Client, Environment, Sandbox

from tests.clients.python.support import PASSWORD, new_email


@pytest.fixture(scope="module")
def api_url(platform) -> str:  # type: ignore[no-untyped-def]
    return platform.api_url


@pytest.fixture(scope="module")
def sdk(api_url: str) -> Iterator[Client]:
    client = Client(base_url=api_url)
    client.auth.signup(new_email(), PASSWORD)
    yield client
    client.close()


@pytest.fixture(scope="module")
def environment(sdk: Client, test_image: str) -> Environment:
    return sdk.environments.create(
        name=f"sdk-{uuid.uuid4().hex[:8]}",
        image=test_image,
        env={"GREETING": "hello"},
        command=["sh", "-c", "echo booted $GREETING; while true; do sleep 3600; done"],
    )


@pytest.fixture(scope="module")
def sandbox(sdk: Client, environment: Environment) -> Iterator[Sandbox]:
    with sdk.sandboxes.create(environment.id, name=f"shared-{uuid.uuid4().hex[:6]}") as created:
        yield created
