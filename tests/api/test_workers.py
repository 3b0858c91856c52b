"""The API as two worker processes (SBX_API_WORKERS=2): what must hold across workers does,
whichever worker answers.

Each test drives both workers through keep-alive connections, each accepted by one worker; the
`pid` of the access log line of every request (found by its `x-trace-id`) shows which worker
served it, so every test checks that both did.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import User, data_of, error_of, signup
from tests.support.platform import Platform, start_api
from tests.support.waiting import wait_for

PER_MINUTE = 20
STREAMS = 2
# New connections until both workers hold enough of them (the kernel picks the worker).
MAX_CONNECTIONS = 200


@pytest.fixture(scope="module")
def two_workers(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    api = start_api(
        platform.base_env,
        tmp_path_factory.mktemp("two-workers-logs"),
        SBX_API_WORKERS="2",
        SBX_RATE_LIMIT_PER_MINUTE=str(PER_MINUTE),
        SBX_MAX_STREAMS_PER_USER=str(STREAMS),
        # A connection found to be one worker's stays open (and that worker's) while a test runs.
        SBX_API_KEEPALIVE_SECONDS="300",
        # Requests refused for their credentials count against their IP, in the budget every API
        # on this database shares (the session's own API counts 127.0.0.1 against a far higher
        # limit): each request here comes from an address of its own.
        SBX_TRUSTED_PROXIES="127.0.0.1",
    )
    yield api
    api.stop_all()


def _pid_in(log: Path, trace_id: str) -> int | None:
    for line in log.read_text(errors="replace").splitlines():
        if trace_id in line and '"request"' in line:
            return int(json.loads(line)["pid"])
    return None


async def served(
    api: Platform, http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, int]:
    """A request and the pid of the worker that answered it."""
    trace_id = uuid.uuid4().hex
    own_ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    sent = {"X-Forwarded-For": own_ip, **(headers or {}), "x-trace-id": trace_id}
    response = await http.request(method, path, headers=sent)
    log = api.log_dir / "api.log"

    async def pid() -> int | None:
        return _pid_in(log, trace_id)

    return response, await wait_for(pid, timeout=15, what="the request's access log line")


@contextlib.asynccontextmanager
async def worker_connections(
    api: Platform, per_worker: int = 1
) -> AsyncIterator[dict[int, list[httpx.AsyncClient]]]:
    """`per_worker` keep-alive connections to each worker, by the worker's pid."""
    opened: list[httpx.AsyncClient] = []
    by_pid: dict[int, list[httpx.AsyncClient]] = {}
    try:
        while len(by_pid) < 2 or any(len(group) < per_worker for group in by_pid.values()):
            assert len(opened) < MAX_CONNECTIONS, f"connections reached only {sorted(by_pid)}"
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            http = httpx.AsyncClient(base_url=api.api_url, limits=limits, timeout=30)
            opened.append(http)
            _, pid = await served(api, http, "GET", "/health/live")
            group = by_pid.setdefault(pid, [])
            if len(group) < per_worker:
                group.append(http)
        yield by_pid
    finally:
        for http in opened:
            await http.aclose()


async def test_a_per_user_rate_limit_holds_across_workers(
    two_workers: Platform, client: httpx.AsyncClient
) -> None:
    user = await signup(client)  # through the shared platform: nothing counted here yet
    async with worker_connections(two_workers) as workers:
        first, second = (group[0] for group in workers.values())
        remaining, pids = [], set()
        for i in range(PER_MINUTE):
            response, pid = await served(
                two_workers, (first, second)[i % 2], "GET", "/environments", user.headers
            )
            assert response.status_code == 200, response.text
            remaining.append(int(response.headers["RateLimit-Remaining"]))
            pids.add(pid)
        assert pids == set(workers)
        # One budget, spent by both workers.
        assert remaining == [PER_MINUTE - 1 - i for i in range(PER_MINUTE)]
        for http in (first, second):
            response, _ = await served(two_workers, http, "GET", "/environments", user.headers)
            error_of(response, 429, "RATE_LIMITED")


async def test_a_per_user_stream_cap_holds_across_workers(
    two_workers: Platform, client: httpx.AsyncClient
) -> None:
    user = await signup(client)
    async with worker_connections(two_workers, per_worker=2) as workers:
        (a1, a2), (b1, b2) = workers.values()
        async with a1.stream("GET", "/events", headers=user.headers) as on_a:
            assert on_a.status_code == 200
            async with b1.stream("GET", "/events", headers=user.headers) as on_b:
                assert on_b.status_code == 200
                # Each worker serves one stream: only a count shared by both refuses a third.
                for http in (a2, b2):
                    response, _ = await served(two_workers, http, "GET", "/events", user.headers)
                    error = error_of(response, 429, "QUOTA_EXCEEDED")
                    assert error["details"] == {"resource": "streams", "limit": STREAMS, "current": STREAMS}

        # Streams closed on either worker give their slots back to both.
        async def reopened() -> bool:
            async with b2.stream("GET", "/events", headers=user.headers) as again:
                return again.status_code == 200

        assert await wait_for(reopened, timeout=30, interval=0.5, what="a stream slot given back")


async def test_an_idempotency_key_replays_across_workers(
    two_workers: Platform, client: httpx.AsyncClient
) -> None:
    user = await signup(client)
    headers = {**user.headers, "Idempotency-Key": uuid.uuid4().hex}
    path = f"/sandboxes/{uuid.uuid4()}/stop"  # unknown: a 404, remembered like any answer
    async with worker_connections(two_workers) as workers:
        first, second = (group[0] for group in workers.values())
        response, first_pid = await served(two_workers, first, "POST", path, headers)
        error_of(response, 404, "NOT_FOUND")
        assert "Idempotent-Replayed" not in response.headers
        again, second_pid = await served(two_workers, second, "POST", path, headers)
        error_of(again, 404, "NOT_FOUND")
        assert again.headers["Idempotent-Replayed"] == "true"
        assert first_pid != second_pid


async def _me_status(
    api: Platform, workers: dict[int, list[httpx.AsyncClient]], token: str
) -> dict[int, int]:
    """The status of `GET /auth/me` with `token` on every worker, by pid."""
    statuses = {}
    for pid, (http, *_) in workers.items():
        response, served_by = await served(api, http, "GET", "/auth/me", {"Authorization": f"Bearer {token}"})
        assert served_by == pid
        statuses[pid] = response.status_code
    return statuses


async def test_a_revoked_api_key_is_refused_by_every_worker_at_once(
    two_workers: Platform, client: httpx.AsyncClient
) -> None:
    user = await signup(client)
    created = data_of(await client.post("/api-keys", json={"name": "workers"}, headers=user.headers), 201)
    async with worker_connections(two_workers) as workers:
        assert set((await _me_status(two_workers, workers, created["key"])).values()) == {200}
        revoker = next(iter(workers.values()))[0]
        data_of(await revoker.delete(f"/api-keys/{created['id']}", headers=user.headers))
        # The very next request, on either worker, is refused: nothing waits for a cache to expire.
        assert set((await _me_status(two_workers, workers, created["key"])).values()) == {401}


async def test_a_logged_out_token_is_refused_by_every_worker_at_once(
    two_workers: Platform, client: httpx.AsyncClient
) -> None:
    user: User = await signup(client)
    async with worker_connections(two_workers) as workers:
        assert set((await _me_status(two_workers, workers, user.token)).values()) == {200}
        last = list(workers.values())[-1][0]
        assert (await last.post("/auth/logout", headers=user.headers)).status_code in (200, 204)
        assert set((await _me_status(two_workers, workers, user.token)).values()) == {401}


def _requests_total(text: str, path: str, status: int) -> float:
    pattern = rf'^http_requests_total\{{method="GET",path="{re.escape(path)}",status="{status}"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_metrics_sum_every_workers_requests(two_workers: Platform, client: httpx.AsyncClient) -> None:
    user = await signup(client)
    template = "/environments/{environment_id}"
    async with worker_connections(two_workers) as workers:
        first, second = (group[0] for group in workers.values())
        before = _requests_total((await first.get("/metrics")).text, template, 404)
        for http, times in ((first, 3), (second, 2)):
            for _ in range(times):
                error_of(
                    await http.get(f"/environments/{uuid.uuid4()}", headers=user.headers), 404, "NOT_FOUND"
                )
        # Either worker's /metrics counts both workers' requests.
        for http in (first, second):
            assert _requests_total((await http.get("/metrics")).text, template, 404) == before + 5
