"""Webhooks as a user sees them: signed deliveries of their sandbox events, retried until a 2xx,
each event seen once by a receiver that deduplicates on `Sbx-Event-Id`, even across a SIGKILL of
the webhooks service; targets the platform must not call, and other users' webhooks, refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sandbox_platform import AsyncClient, NotFoundError, WebhookVerificationError, verify_webhook
from sbx_common import subjects
from sbx_common.messages import SandboxEvent
from sbx_common.status import Status

from tests.support.api import User, create_environment, data_of, error_of, error_paths, signup
from tests.support.nats_auth import admin_connect
from tests.support.platform import WEBHOOKS_ENV, Platform, dedicated_platform, extra_api
from tests.support.sandboxes import create_sandbox, destroy_all
from tests.support.waiting import wait_for

SBX = str(Path(sys.executable).parent / "sbx")

MAX_WEBHOOKS = 3


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on loopback. `/ok` answers 200; `/flaky` answers 500 to its first two
    requests, then 200; `/slow` takes a while before its 200 (so deliveries are in flight)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    flaky_left: int = 2

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, path: str) -> int:
        if path == "/slow":
            time.sleep(0.1)
        if path == "/flaky":
            with self.lock:
                if self.flaky_left > 0:
                    self.flaky_left -= 1
                    return 500
        return 200


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender went away mid-request (a killed service): nothing was delivered,
                # as a real receiver would see it.
                self.close_connection = True
                return
            with state.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                state.requests.append(Received(self.path, headers, body))
            status = state.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
async def private_api(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """An API that accepts loopback targets (the receivers here), with a small webhook cap."""
    async with extra_api(
        platform,
        tmp_path_factory.mktemp("webhooks-api"),
        SBX_WEBHOOK_ALLOW_PRIVATE="true",
        SBX_MAX_WEBHOOKS_PER_USER=str(MAX_WEBHOOKS),
    ) as http:
        yield http


async def create_webhook(http: httpx.AsyncClient, user: User, url: str, events: list[str]) -> dict[str, Any]:
    response = await http.post("/webhooks", json={"url": url, "events": events}, headers=user.headers)
    created: dict[str, Any] = data_of(response, 201)
    return created


async def deliveries(http: httpx.AsyncClient, user: User, webhook_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/webhooks/{webhook_id}/deliveries?limit=500", headers=user.headers)
    items: list[dict[str, Any]] = data_of(response)
    return items


async def publish_events(
    nats_url: str, user: User, count: int, status: Status = Status.STOPPED
) -> list[SandboxEvent]:
    """`count` events of the user's (made-up) sandboxes on SBX_EVT, as the orchestrator emits them."""
    nc = await admin_connect(nats_url, "tests-webhooks-burst")
    try:
        js = nc.jetstream()
        events = [
            SandboxEvent(sandbox_id=uuid.uuid4(), owner_id=uuid.UUID(user.id), status=status)
            for _ in range(count)
        ]
        for event in events:
            await js.publish(
                subjects.event(event.owner_id, event.sandbox_id, event.status.value), event.to_bytes()
            )
        return events
    finally:
        await nc.close()


async def test_a_running_sandbox_is_delivered_signed(
    private_api: httpx.AsyncClient, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    user = await signup(private_api)
    hook = await create_webhook(private_api, user, receiver.url("/ok"), ["sandbox.running"])
    assert hook["secret"].startswith("whsec_")
    assert hook["events"] == ["sandbox.running"]
    env = await create_environment(client, user, cpu=0.5, memory=64)
    try:
        sandbox = await create_sandbox(client, user, env["id"], "?wait=true&timeout=60")
        assert sandbox["status"] == "running", sandbox

        async def arrived() -> list[Received]:
            return [r for r in receiver.on("/ok") if sandbox["id"].encode() in r.body]

        [delivery] = await wait_for(arrived, timeout=30, what="the running event at the receiver")
        event = verify_webhook(delivery.body, delivery.headers, hook["secret"])
        assert event.type == "sandbox.running"
        assert event.sandbox_id == sandbox["id"]
        assert event.status == "running"
        assert delivery.headers["sbx-webhook-id"] == hook["id"]
        assert delivery.headers["sbx-event-id"] == event.id
        # Only the types asked for: the sandbox's `pending`/`starting` were not delivered.
        assert all(
            b"sandbox.running" in r.body for r in receiver.on("/ok") if sandbox["id"].encode() in r.body
        )
        with pytest.raises(WebhookVerificationError):
            verify_webhook(delivery.body, delivery.headers, "whsec_not-the-secret")
        with pytest.raises(WebhookVerificationError):
            verify_webhook(delivery.body + b" ", delivery.headers, hook["secret"])
        with pytest.raises(WebhookVerificationError):
            verify_webhook(delivery.body, delivery.headers, hook["secret"], tolerance_seconds=-1)

        async def delivered() -> list[dict[str, Any]]:
            items = await deliveries(private_api, user, hook["id"])
            return items if items and items[0]["status"] == "delivered" else []

        [row] = await wait_for(delivered, timeout=15, what="the delivery recorded as delivered")
        assert row["eventId"] == event.id
        assert row["attempts"] == 1
        assert row["responseStatus"] == 200
        assert row["lastAttemptAt"]
    finally:
        await destroy_all(client, user)


async def test_a_failing_receiver_is_retried_until_it_answers_2xx(
    private_api: httpx.AsyncClient, platform: Platform, receiver: Receiver, nats_url: str
) -> None:
    user = await signup(private_api)
    hook = await create_webhook(private_api, user, receiver.url("/flaky"), ["sandbox.*"])
    [event] = await publish_events(nats_url, user, 1)

    async def delivered() -> list[dict[str, Any]]:
        items = await deliveries(private_api, user, hook["id"])
        return items if items and items[0]["status"] == "delivered" else []

    [row] = await wait_for(delivered, timeout=30, what="the delivery after two 500s")
    assert row["attempts"] == 3
    assert row["responseStatus"] == 200
    received = [r for r in receiver.on("/flaky") if str(event.sandbox_id).encode() in r.body]
    assert len(received) == 3
    assert len({r.headers["sbx-event-id"] for r in received}) == 1  # the same event each time
    for r in received:
        verify_webhook(r.body, r.headers, hook["secret"])


async def test_a_killed_webhooks_service_loses_and_repeats_nothing(
    private_api: httpx.AsyncClient, platform: Platform, receiver: Receiver, nats_url: str
) -> None:
    count = 150
    concurrency = 8  # the service's default deliveries in flight
    user = await signup(private_api)
    hook = await create_webhook(private_api, user, receiver.url("/slow"), ["sandbox.stopped"])

    def received() -> list[Received]:
        return [r for r in receiver.on("/slow") if r.headers.get("sbx-webhook-id") == hook["id"]]

    events = await publish_events(nats_url, user, count)
    try:

        async def some_arrived() -> bool:
            return len(received()) >= 10

        await wait_for(some_arrived, timeout=30, what="the first deliveries")
        # A crash with deliveries in flight, some recorded and not sent, events not yet taken up.
        await asyncio.to_thread(platform.kill_service, "webhooks")
        before = len(received())
        assert before < count, "every delivery was made before the kill: nothing was tested"
    finally:
        await asyncio.to_thread(platform.start_service, "webhooks", WEBHOOKS_ENV)

    expected = {str(e.sandbox_id) for e in events}

    async def all_delivered() -> list[dict[str, Any]] | None:
        items = await deliveries(private_api, user, hook["id"])
        done = [d for d in items if d["status"] == "delivered"]
        return items if len(done) == count else None

    rows = await wait_for(all_delivered, timeout=90, interval=0.5, what="every delivery delivered")
    assert len(rows) == count  # one delivery per event, none made twice
    got = received()
    by_event: dict[str, set[str]] = {}
    for r in got:
        event = verify_webhook(r.body, r.headers, hook["secret"])
        by_event.setdefault(r.headers["sbx-event-id"], set()).add(event.sandbox_id)
    # The deduplicating receiver saw every event, each once.
    assert {sid for sids in by_event.values() for sid in sids} == expected
    assert all(len(sids) == 1 for sids in by_event.values())
    assert len(by_event) == count
    # At least once: only the deliveries in flight at the kill can have been sent again.
    assert len(got) - count <= concurrency


async def test_targets_the_platform_must_not_call_are_refused(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
        "http://user:pass@example.com/hook",
        "http://" + "a" * 300 + ".example/hook",  # no name IDNA can encode
    ):
        response = await client.post(
            "/webhooks", json={"url": url, "events": ["sandbox.*"]}, headers=user.headers
        )
        assert error_paths(response) == ["url"], url
    response = await client.post(
        "/webhooks",
        json={"url": "https://example.com/h", "events": ["sandbox.exploded"]},
        headers=user.headers,
    )
    assert error_paths(response) == ["events"]
    response = await client.post(
        "/webhooks", json={"url": "https://example.com/h", "events": []}, headers=user.headers
    )
    assert error_paths(response) == ["events"]
    # Nothing was left behind by the refusals.
    assert data_of(await client.get("/webhooks", headers=user.headers)) == []


async def test_webhooks_are_private_capped_and_never_show_their_secret(
    private_api: httpx.AsyncClient, platform: Platform, receiver: Receiver
) -> None:
    owner = await signup(private_api)
    other = await signup(private_api)
    hooks = [
        await create_webhook(private_api, owner, receiver.url("/ok"), ["sandbox.failed"])
        for _ in range(MAX_WEBHOOKS)
    ]
    response = await private_api.post(
        "/webhooks", json={"url": receiver.url("/ok"), "events": ["sandbox.*"]}, headers=owner.headers
    )
    assert error_of(response, 429, "QUOTA_EXCEEDED")

    listed = await private_api.get("/webhooks", headers=owner.headers)
    assert {h["id"] for h in data_of(listed)} == {h["id"] for h in hooks}
    for hook in hooks:
        assert hook["secret"] not in listed.text
        assert "secret" not in data_of(listed)[0]
    assert data_of(await private_api.get("/webhooks", headers=other.headers)) == []

    target = hooks[0]["id"]
    error_of(await private_api.get(f"/webhooks/{target}/deliveries", headers=other.headers), 404, "NOT_FOUND")
    error_of(await private_api.delete(f"/webhooks/{target}", headers=other.headers), 404, "NOT_FOUND")
    error_of(await private_api.delete(f"/webhooks/{uuid.uuid4()}", headers=owner.headers), 404, "NOT_FOUND")
    data_of(await private_api.delete(f"/webhooks/{target}", headers=owner.headers))
    error_of(await private_api.delete(f"/webhooks/{target}", headers=owner.headers), 404, "NOT_FOUND")
    error_of(await private_api.get(f"/webhooks/{target}/deliveries", headers=owner.headers), 404, "NOT_FOUND")
    # Deleting freed a place under the cap.
    await create_webhook(private_api, owner, receiver.url("/ok"), ["sandbox.*"])
    # No secret reached any service's log.
    logs = platform.logs()
    assert all(hook["secret"] not in logs for hook in hooks)


async def test_the_sdk_and_the_cli_manage_webhooks(
    private_api: httpx.AsyncClient, receiver: Receiver, nats_url: str, tmp_path: Path
) -> None:
    user = await signup(private_api)
    async with AsyncClient(base_url=str(private_api.base_url), token=user.token) as sdk:
        created = await sdk.webhooks.create(receiver.url("/ok"), ["sandbox.stopped"], description="sdk")
        assert created.secret.startswith("whsec_")
        listed = [w async for w in sdk.webhooks.list()]
        assert [w.id for w in listed] == [created.id]
        assert "secret" not in listed[0].to_api()
        [event] = await publish_events(nats_url, user, 1)

        async def delivered() -> list[Any]:
            items = [d async for d in sdk.webhooks.deliveries(created.id)]
            return items if items and items[0].status == "delivered" else []

        [delivery] = await wait_for(delivered, timeout=15, what="the delivery through the SDK")
        assert delivery.attempts == 1
        assert delivery.response_status == 200
        await sdk.webhooks.delete(created.id)
        with pytest.raises(NotFoundError):
            await sdk.webhooks.delete(created.id)
    assert any(str(event.sandbox_id).encode() in r.body for r in receiver.on("/ok"))

    env = {
        **{k: v for k, v in os.environ.items() if k not in ("SBX_API_KEY", "SBX_API_URL")},
        "SBX_API_URL": str(private_api.base_url),
        "SBX_CONFIG_DIR": str(tmp_path),
    }

    def sbx(*args: str) -> Any:
        result = subprocess.run(
            [SBX, *args, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    await asyncio.to_thread(
        sbx,
        "signup",
        "--email",
        f"cli-{uuid.uuid4().hex[:10]}@example.com",
        "--password",
        "correct horse battery",
    )
    hook = await asyncio.to_thread(
        sbx,
        "webhook",
        "create",
        receiver.url("/ok"),
        "--event",
        "sandbox.running",
        "--event",
        "sandbox.failed",
    )
    assert hook["events"] == ["sandbox.running", "sandbox.failed"]
    assert hook["secret"].startswith("whsec_")
    listed_cli = await asyncio.to_thread(sbx, "webhook", "ls")
    assert [h["id"] for h in listed_cli] == [hook["id"]]
    assert hook["secret"] not in json.dumps(listed_cli)
    assert await asyncio.to_thread(sbx, "webhook", "deliveries", hook["id"]) == []
    assert (await asyncio.to_thread(sbx, "webhook", "rm", hook["id"]))["deleted"] is True
    assert await asyncio.to_thread(sbx, "webhook", "ls") == []


async def test_a_target_is_checked_again_at_delivery_time(receiver: Receiver, tmp_path: Path) -> None:
    # An API that let a loopback URL in (as a public name re-pointed at loopback later would be),
    # and a webhooks service that does not allow private targets: it must not call it.
    async with (
        dedicated_platform(
            tmp_path,
            services=("webhooks", "api"),
            service_env={
                "api": {"SBX_WEBHOOK_ALLOW_PRIVATE": "true"},
                "webhooks": {"SBX_WEBHOOK_RETRY_BASE_SECONDS": "0.2"},
            },
        ) as plat,
        plat.client() as http,
    ):
        user = await signup(http)
        hook = await create_webhook(http, user, receiver.url("/ok"), ["sandbox.*"])
        [event] = await publish_events(plat.nats_url, user, 1)

        async def refused_twice() -> list[dict[str, Any]]:
            items = await deliveries(http, user, hook["id"])
            return items if items and items[0]["attempts"] >= 2 else []

        [row] = await wait_for(refused_twice, timeout=30, what="two refused attempts")
        assert row["status"] == "retrying"
        assert row["responseStatus"] is None
        pg = await asyncpg.connect(plat.database_url)
        try:
            errors = await pg.fetch(
                "SELECT error FROM webhook_delivery_attempts WHERE delivery_id = $1", uuid.UUID(row["id"])
            )
        finally:
            await pg.close()
        assert {e["error"] for e in errors} == {"refused target"}
        assert not [r for r in receiver.requests if str(event.sandbox_id).encode() in r.body]


async def test_settled_deliveries_are_pruned_by_age_and_count(tmp_path: Path) -> None:
    """The retention deletes settled deliveries older than its days or beyond the newest count of
    their webhook, with their attempts; never one still retrying, never a young one."""
    async with (
        dedicated_platform(
            tmp_path,
            services=("webhooks", "api"),
            service_env={
                "api": {"SBX_WEBHOOK_ALLOW_PRIVATE": "true"},
                "webhooks": {
                    "SBX_WEBHOOK_DELIVERY_RETENTION_DAYS": "1",
                    "SBX_WEBHOOK_DELIVERY_RETENTION_COUNT": "3",
                    "SBX_WEBHOOK_RETENTION_INTERVAL_SECONDS": "0.5",
                },
            },
        ) as plat,
        plat.client() as http,
    ):
        user = await signup(http)
        hook = await create_webhook(http, user, "http://127.0.0.1:9/never", ["sandbox.*"])
        other = await create_webhook(http, user, "http://127.0.0.1:9/other", ["sandbox.*"])
        # (webhook, status, age): what each seeded delivery is, and whether the retention keeps it.
        seeded = {
            "old delivered": (hook, "delivered", "2 days", False),
            "old failed": (hook, "failed", "2 days", False),
            "old retrying": (hook, "retrying", "2 days", True),
            "young": (hook, "delivered", "1 minute", True),
            "1h": (hook, "delivered", "1 hour", True),
            "2h": (hook, "delivered", "2 hours", True),
            "3h": (hook, "delivered", "3 hours", False),  # the 4th newest of its webhook
            "4h": (hook, "failed", "4 hours", False),
            "other 1h": (other, "delivered", "1 hour", True),
            "other 2h": (other, "delivered", "2 hours", True),
        }
        ids = {name: uuid.uuid4() for name in seeded}
        pg = await asyncpg.connect(plat.database_url)
        try:
            for name, (webhook, status, age, _) in seeded.items():
                await pg.execute(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event_id, body, status, attempts,"
                    " created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, 1,"
                    " now() - $6::text::interval, now() + interval '1 day')",
                    ids[name],
                    uuid.UUID(webhook["id"]),
                    name,
                    b"{}",
                    status,
                    age,
                )
                await pg.execute(
                    "INSERT INTO webhook_delivery_attempts (delivery_id, attempt, duration_ms)"
                    " VALUES ($1, 1, 5)",
                    ids[name],
                )
            kept = {ids[name] for name, (*_, keep) in seeded.items() if keep}

            async def pruned() -> bool:
                rows = await pg.fetch(
                    "SELECT id FROM webhook_deliveries WHERE id = ANY($1::uuid[])", list(ids.values())
                )
                return {r["id"] for r in rows} == kept

            await wait_for(pruned, timeout=30, what="the retention's sweep")
            attempts = await pg.fetch(
                "SELECT delivery_id FROM webhook_delivery_attempts WHERE delivery_id = ANY($1::uuid[])",
                list(ids.values()),
            )
            assert {a["delivery_id"] for a in attempts} == kept
        finally:
            await pg.close()
        listed = await deliveries(http, user, hook["id"])
        assert {d["id"] for d in listed} == {
            str(i) for i in kept if i not in (ids["other 1h"], ids["other 2h"])
        }
