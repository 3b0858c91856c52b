"""The seed's demo flow through the sync SDK, against the real platform."""

from __future__ import annotations

import uuid

import pytest
from sandbox_platform import (
    Client,
    Environment,
    InvalidStateError,
    Metrics,
    NotRunningError,
    Sandbox,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)

from tests.clients.python.support import PASSWORD, new_email, wait_until


def test_signup_login_and_api_keys(api_url: str) -> None:
    email = new_email()
    with Client(base_url=api_url) as client:
        user = client.auth.signup(email, PASSWORD)
        assert user.email == email
        assert client.token
        assert client.auth.me().id == user.id

        key = client.api_keys.create("Development Key")
        assert key.key.startswith("sk_")
        assert key.id in {k.id for k in client.api_keys.list()}

        with Client(base_url=api_url, api_key=key.key) as by_key:
            assert by_key.auth.me().email == email
            client.api_keys.revoke(key.id)
            with pytest.raises(UnauthorizedError) as refused:
                by_key.auth.me()
            assert refused.value.status == 401
            assert refused.value.code == "UNAUTHORIZED"

    with Client(base_url=api_url) as again:
        assert again.auth.login(email.upper(), PASSWORD).id == user.id


def test_environment_versions_and_secrets(sdk: Client, test_image: str) -> None:
    environment = sdk.environments.create(
        name=f"versions-{uuid.uuid4().hex[:8]}", image=test_image, ports=[8080]
    )
    assert environment.version == 1
    assert environment.ports[0].container == 8080
    assert environment.ports[0].host is None

    assert (environment.runtime, environment.disk) == ("runc", 2048)

    updated = sdk.environments.update(environment.id, memory=128, command=["sleep", "60"])
    assert (updated.version, updated.memory, updated.command) == (2, 128, ["sleep", "60"])
    cleared = sdk.environments.update(environment.id, command=None)
    assert cleared.version == 3
    assert cleared.command is None
    info = sdk.info()
    assert info.runtimes[0] == "runc"
    sized = sdk.environments.update(environment.id, disk=512, runtime=info.runtimes[-1])
    assert (sized.version, sized.disk, sized.runtime) == (4, 512, info.runtimes[-1])
    with pytest.raises(ValidationError) as refused:
        sdk.environments.update(environment.id, runtime="no-such-runtime")
    assert refused.value.details["errors"][0]["path"] == "runtime"
    assert [v.version for v in sdk.environments.versions(environment.id)] == [1, 2, 3, 4]
    assert [v.disk for v in sdk.environments.versions(environment.id)] == [2048, 2048, 2048, 512]

    secret = sdk.environments.set_secret(environment.id, "API_KEY", "super-secret-value")
    assert secret.key == "API_KEY"
    assert [s.key for s in sdk.environments.get(environment.id).secrets] == ["API_KEY"]
    sdk.environments.delete_secret(environment.id, "API_KEY")
    assert sdk.environments.get(environment.id).secrets == []

    assert environment.id in {e.id for e in sdk.environments.list()}
    sdk.environments.delete(environment.id)
    assert environment.id not in {e.id for e in sdk.environments.list(limit=1)}


def test_secret_reaches_the_sandbox_and_exec(sdk: Client, environment: Environment) -> None:
    sdk.environments.set_secret(environment.id, "API_KEY", "super-secret-value")
    with sdk.sandboxes.create(environment.id, env={"EXTRA": "x"}, metadata={"team": "sdk"}) as sandbox:
        assert sandbox.status == "running"
        assert sandbox.env == {"GREETING": "hello", "EXTRA": "x"}
        assert "API_KEY" not in sandbox.env
        result = sandbox.exec("echo $API_KEY $GREETING; echo oops >&2; exit 3")
        assert (result.exit_code, result.stdout, result.stderr) == (3, "super-secret-value hello\n", "oops\n")
        assert not result.timed_out
        as_list = sandbox.exec(["sh", "-c", "pwd; echo $ONE"], env={"ONE": "1"}, workdir="/bin")
        assert as_list.stdout == "/bin\n1\n"
        assert sandbox.exec("sleep 5", timeout=0.5).timed_out
        assert [s.id for s in sdk.sandboxes.list(metadata={"team": "sdk"})] == [sandbox.id]
    assert sandbox.status == "destroyed"
    sdk.environments.delete_secret(environment.id, "API_KEY")


def test_logs_of_the_command(sandbox: Sandbox) -> None:
    lines = wait_until(lambda: sandbox.logs(tail=10), timeout=30)
    assert lines[0].text == "booted hello"
    assert lines[0].seq == 1
    assert lines[0].stream == "stdout"
    with sandbox.stream_logs(since=0) as stream:
        assert next(stream).text == "booted hello"


def test_terminal_echo_and_resize(sandbox: Sandbox) -> None:
    with sandbox.terminal(cols=100, rows=30) as terminal:
        terminal.send("echo hi\n")
        assert b"\nhi\r\n" in terminal.read_until(b"\nhi\r\n", timeout=15)
        terminal.send("stty size\n")
        terminal.read_until(b"30 100", timeout=15)
        terminal.resize(120, 40)

        def resized() -> bool:
            # The resize and the keys travel apart: ask again until the new size shows.
            terminal.send("stty size\n")
            terminal.read_until(b"40 120", timeout=2)
            return True

        wait_until(resized, timeout=20, interval=0)
        terminal.send("exit\n")
        assert wait_until(lambda: terminal.recv(timeout=5) == b"", timeout=20)
        assert terminal.close_code == 1000


def test_metrics_once_sampled(sandbox: Sandbox) -> None:
    def sample() -> Metrics | None:
        try:
            return sandbox.metrics()
        except UnavailableError:
            return None

    metrics = wait_until(sample, timeout=60, interval=0.5)
    assert metrics.memory.limit_bytes == 256 * 1024 * 1024
    assert metrics.pids >= 1
    assert metrics.cpu.cores == 1


def test_lifecycle_replicate_events_and_destroy(sdk: Client, environment: Environment) -> None:
    sandbox = sdk.sandboxes.create(environment.id, ttl_seconds=600)
    try:
        assert sandbox.stop().status == "stopped"
        with pytest.raises(NotRunningError):
            sandbox.exec("true")
        with pytest.raises(NotRunningError):
            sandbox.metrics()
        with pytest.raises(NotRunningError):
            sandbox.terminal()
        assert sandbox.start().status == "running"
        assert sandbox.restart().status == "running"
        assert sandbox.exec("echo up").stdout == "up\n"

        replica = sandbox.replicate(env={"EXTRA": "y"})
        assert replica.id != sandbox.id
        assert replica.status == "running"
        assert (replica.environment_id, replica.environment_version) == (
            sandbox.environment_id,
            sandbox.environment_version,
        )
        assert replica.exec("echo $GREETING $EXTRA").stdout == "hello y\n"
        assert replica.destroy().status == "destroyed"
        with pytest.raises(InvalidStateError) as refused:
            replica.start()
        assert refused.value.status == 409
    finally:
        sandbox.destroy()
    assert sandbox.status == "destroyed"
    assert sdk.sandboxes.get(sandbox.id).destroyed_at is not None

    seen = []
    with sandbox.events() as events:
        for event in events:
            assert event.sandbox_id == sandbox.id
            seen.append(event)
            if event.status == "destroyed":
                break
    statuses = [event.status for event in seen]
    assert statuses[statuses.index("stopped") :].count("running") >= 2
    assert statuses[-1] == "destroyed"

    # Resuming after an event gives only the events after it.
    with sandbox.events(since=seen[-2].id) as resumed:
        assert next(resumed).id == seen[-1].id


def test_wait_follows_events(sdk: Client, environment: Environment) -> None:
    sandbox = sdk.sandboxes.create(environment.id, wait=False)
    assert sandbox.status in {"pending", "starting", "running"}
    try:
        assert sandbox.wait(timeout=60).status == "running"
        sandbox.stop(wait=False)
        assert sandbox.wait(timeout=60, status="stopped").status == "stopped"
    finally:
        sandbox.destroy(wait=False)
    assert sandbox.wait(timeout=60).status == "destroyed"
