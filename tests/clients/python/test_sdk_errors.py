"""Each error of the contract reaches the caller as its own class, over HTTP and WebSockets."""

from __future__ import annotations

import uuid

import pytest
from sandbox_platform import (
    Client,
    ConflictError,
    Environment,
    InvalidStateError,
    NotFoundError,
    NotRunningError,
    QuotaExceededError,
    Sandbox,
    SandboxPlatformError,
    UnauthorizedError,
    ValidationError,
)

from tests.clients.python.support import PASSWORD, new_email


def test_not_found(sdk: Client, sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError) as missing:
        sdk.sandboxes.get(str(uuid.uuid4()))
    assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND")
    assert missing.value.trace_id
    with pytest.raises(NotFoundError):
        sdk.environments.get("not-an-id")
    gone = Sandbox.bind(sdk, {**sandbox.to_api(), "id": str(uuid.uuid4())})
    with pytest.raises(NotFoundError) as closed:
        next(gone.stream_logs())
    assert closed.value.details["closeCode"] == 4004


def test_unauthorized(api_url: str, sandbox: Sandbox) -> None:
    with Client(base_url=api_url, api_key="sk_" + "0" * 40) as bad:
        with pytest.raises(UnauthorizedError) as refused:
            bad.auth.me()
        assert (refused.value.status, refused.value.code) == (401, "UNAUTHORIZED")
    with Client(base_url=api_url, token="not-a-jwt") as bad, pytest.raises(UnauthorizedError):
        list(bad.sandboxes.list())
    with Client(base_url=api_url) as anonymous, pytest.raises(UnauthorizedError):
        anonymous.environments.create(name="x", image="busybox")
    with Client(base_url=api_url) as wrong, pytest.raises(UnauthorizedError):
        wrong.auth.login(new_email(), PASSWORD)
    with Client(base_url=api_url, api_key="sk_" + "1" * 40) as bad:
        foreign = Sandbox.bind(bad, sandbox.to_api())
        with pytest.raises(UnauthorizedError) as closed:
            next(foreign.stream_logs())
        assert closed.value.details["closeCode"] == 4001


def test_validation(sdk: Client, environment: Environment) -> None:
    with pytest.raises(ValidationError) as refused:
        sdk.environments.create(name="no spaces allowed", image="busybox", memory=1)
    assert (refused.value.status, refused.value.code) == (400, "VALIDATION_ERROR")
    assert {"name", "memory"} <= {error["path"] for error in refused.value.errors}
    with pytest.raises(ValidationError):
        sdk.sandboxes.create(environment.id, ttl_seconds=1)
    with pytest.raises(ValidationError):
        sdk.environments.set_secret(environment.id, "lower-case", "v")


def test_conflict(sdk: Client, environment: Environment, sandbox: Sandbox) -> None:
    with pytest.raises(ConflictError) as duplicate:
        sdk.environments.create(name=environment.name, image=environment.image)
    assert (duplicate.value.status, duplicate.value.code) == (409, "CONFLICT")
    assert sandbox.environment_id == environment.id
    with pytest.raises(ConflictError):
        sdk.environments.delete(environment.id)  # a sandbox still uses it


def test_invalid_state_and_not_running(sdk: Client, environment: Environment) -> None:
    sandbox = sdk.sandboxes.create(environment.id)
    sandbox.stop()
    with pytest.raises(NotRunningError) as refused:
        sandbox.exec("true")
    assert (refused.value.status, refused.value.code) == (409, "NOT_RUNNING")
    with pytest.raises(NotRunningError) as closed:
        sandbox.terminal()
    assert closed.value.details["closeCode"] == 4009
    sandbox.destroy()
    with pytest.raises(InvalidStateError) as invalid:
        sandbox.restart()
    assert (invalid.value.status, invalid.value.code) == (409, "INVALID_STATE")
    assert isinstance(invalid.value, SandboxPlatformError)


def test_quota_exceeded(api_url: str, test_image: str) -> None:
    with Client(base_url=api_url) as client:
        client.auth.signup(new_email(), PASSWORD)
        created = 0
        with pytest.raises(QuotaExceededError) as refused:  # noqa: PT012 (the quota's end is not known here)
            while created < 100:
                client.environments.create(name=f"quota-{created}", image=test_image)
                created += 1
        assert (refused.value.status, refused.value.code) == (429, "QUOTA_EXCEEDED")
        assert len(list(client.environments.list(limit=7))) == created  # every page, 7 at a time
