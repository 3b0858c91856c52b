"""Retries, idempotency keys and timeouts, checked on a scripted transport (no platform needed):
which failures are retried, that a lifecycle call reuses its Idempotency-Key, and that
`Retry-After` is honoured."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from sandbox_platform import (
    APIConnectionError,
    AsyncClient,
    Client,
    QuotaExceededError,
    RateLimitedError,
    RetryPolicy,
    Sandbox,
    UnavailableError,
)

API = "http://sandbox.test"
FAST = RetryPolicy(max_retries=3, backoff=0.01, max_backoff=0.02)
SANDBOX = {
    "id": "9b2f6c1e-0000-4000-8000-000000000001",
    "name": "demo",
    "environmentId": "9b2f6c1e-0000-4000-8000-000000000002",
    "environmentVersion": 1,
    "status": "running",
    "statusReason": None,
    "image": "busybox",
    "cpu": 1.0,
    "memory": 256,
    "env": {},
    "metadata": {},
    "endpoints": [],
    "createdAt": "2025-01-01T00:00:00.000Z",
    "startedAt": "2025-01-01T00:00:01.000Z",
    "stoppedAt": None,
    "expiresAt": "2025-01-01T01:00:00.000Z",
    "destroyedAt": None,
}

Step = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, headers: dict[str, str] | None = None) -> Step:
    body = {"success": False, "error": {"code": code, "message": f"{code} for the test."}}
    return lambda request: httpx.Response(status, json=body, headers=headers)


def ok(data: object, status: int = 200) -> Step:
    return lambda request: httpx.Response(status, json={"success": True, "data": data})


def broken(exc: type[httpx.TransportError]) -> Step:
    def step(request: httpx.Request) -> httpx.Response:
        raise exc("scripted failure", request=request)

    return step


class Script:
    """Answers requests with the given steps, in order, and records the requests."""

    def __init__(self, *steps: Step) -> None:
        self.steps: Iterator[Step] = iter(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return next(self.steps)(request)

    def client(self, **kwargs: object) -> Client:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return Client(base_url=API, api_key="sk_test", retry=FAST, http_client=http, **kwargs)  # type: ignore[arg-type]


def sandbox_of(client: Client) -> Sandbox:
    return Sandbox.bind(client, SANDBOX)


def test_lifecycle_call_retries_503_with_the_same_idempotency_key() -> None:
    script = Script(
        error(503, "UNAVAILABLE"), broken(httpx.ReadError), ok({**SANDBOX, "status": "stopped"}, 202)
    )
    sandbox = sandbox_of(script.client())
    assert sandbox.stop().status == "stopped"
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(script.requests) == 3
    assert len(keys) == 1
    assert script.requests[0].url.params["wait"] == "true"
    assert script.requests[0].headers["Authorization"] == "Bearer sk_test"
    assert script.requests[0].headers["User-Agent"].startswith("sandbox-platform-python/")


def test_each_lifecycle_call_has_its_own_key() -> None:
    script = Script(ok(SANDBOX, 202), ok(SANDBOX, 202))
    sandbox = sandbox_of(script.client())
    sandbox.restart()
    sandbox.restart()
    first, second = (r.headers["Idempotency-Key"] for r in script.requests)
    assert first != second


def test_conflict_on_a_retry_means_the_first_attempt_is_still_running() -> None:
    script = Script(broken(httpx.ReadTimeout), error(409, "CONFLICT"), ok(SANDBOX, 202))
    assert sandbox_of(script.client()).start().status == "running"
    assert len(script.requests) == 3


def test_rate_limited_honours_retry_after() -> None:
    script = Script(error(429, "RATE_LIMITED", {"Retry-After": "0.3"}), ok(SANDBOX))
    started = time.monotonic()
    assert script.client().sandboxes.get(SANDBOX["id"]).id == SANDBOX["id"]  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.3
    assert len(script.requests) == 2


def test_rate_limited_past_the_retries_raises_with_retry_after() -> None:
    script = Script(*[error(429, "RATE_LIMITED", {"Retry-After": "0"})] * 3)
    with pytest.raises(RateLimitedError) as refused:
        script.client(max_retries=2).auth.me()
    assert refused.value.retry_after == 0
    assert refused.value.status == 429
    assert len(script.requests) == 3


def test_quota_exceeded_is_not_retried() -> None:
    script = Script(error(429, "QUOTA_EXCEEDED"))
    with pytest.raises(QuotaExceededError):
        script.client().sandboxes.create(SANDBOX["environmentId"])  # type: ignore[arg-type]
    assert len(script.requests) == 1


def test_connection_errors_are_retried_for_reads() -> None:
    script = Script(broken(httpx.ConnectError), broken(httpx.ReadError), ok(SANDBOX))
    assert script.client().sandboxes.get(SANDBOX["id"]).name == "demo"  # type: ignore[arg-type]
    assert len(script.requests) == 3


def test_exec_is_not_repeated_once_it_may_have_arrived() -> None:
    script = Script(broken(httpx.ConnectError), broken(httpx.ReadError))
    with pytest.raises(APIConnectionError):
        sandbox_of(script.client()).exec("rm -rf /data/once")
    assert len(script.requests) == 2  # the connect failure is retried, the read failure is not


def test_retries_are_bounded() -> None:
    script = Script(*[error(503, "UNAVAILABLE")] * 10)
    with pytest.raises(UnavailableError) as failed:
        script.client(max_retries=2).auth.me()
    assert failed.value.code == "UNAVAILABLE"
    assert len(script.requests) == 3


def test_every_call_has_a_timeout() -> None:
    script = Script(
        ok(SANDBOX), ok({"exitCode": 0, "stdout": "", "stderr": "", "durationMs": 1, "timedOut": False})
    )
    client = script.client(timeout=5)
    sandbox = client.sandboxes.get(SANDBOX["id"])  # type: ignore[arg-type]
    sandbox.exec("sleep 100", timeout=100)
    plain, exec_ = (r.extensions["timeout"] for r in script.requests)
    assert plain["read"] == 5
    assert exec_["read"] > 100  # the command's own timeout, plus a margin


async def test_async_client_retries_like_the_sync_one() -> None:
    script = Script(error(503, "UNAVAILABLE"), ok(SANDBOX, 202))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    async with AsyncClient(base_url=API, api_key="sk_test", retry=FAST, http_client=http) as client:
        sandbox = await client.sandboxes.create(SANDBOX["environmentId"])  # type: ignore[arg-type]
    assert sandbox.status == "running"
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1
    await http.aclose()
