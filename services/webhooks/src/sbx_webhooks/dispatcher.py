"""Delivers the recorded deliveries: a few workers, each taking the next due row with
`FOR UPDATE SKIP LOCKED`, POSTing it, and writing the attempt, in one transaction.

The row stays locked while its POST is in flight, so two workers (or two replicas) never send
the same delivery at once; a crash releases the lock and the delivery is sent again
(at least once: receivers deduplicate on `Sbx-Event-Id`). Every attempt resolves the target
again, refuses it if it now points at an inner address, and connects to the address it
checked (DNS rebinding finds no second lookup to answer). No redirect is followed, no
response body is read, and every call has a timeout. Nothing secret is logged: only ids, the
status code and the class of a network error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

import asyncpg
import httpx
from sbx_common.crypto import DecryptionFailed, SealedSecret, SecretBox
from sbx_common.tasks import cancel_and_wait
from sbx_common.timeutil import utcnow
from sbx_common.webhooks import RefusedTarget, check_target, pinned, secret_binding, signature

from sbx_webhooks import repository
from sbx_webhooks.config import WebhooksSettings
from sbx_webhooks.metrics import ATTEMPT_SECONDS, ATTEMPTS, DELIVERIES

logger = logging.getLogger(__name__)

USER_AGENT = "sbx-webhooks/1"


def next_delay(settings: WebhooksSettings, attempt: int) -> float:
    """Exponential backoff after the `attempt`-th failure, capped."""
    return float(
        min(settings.webhook_retry_base_seconds * 2 ** (attempt - 1), settings.webhook_retry_max_seconds)
    )


class Dispatcher:
    def __init__(self, settings: WebhooksSettings, pool: asyncpg.Pool, box: SecretBox) -> None:
        self.settings = settings
        self._pool = pool
        self._box = box
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"webhook-worker-{i}")
            for i in range(self.settings.webhook_concurrency)
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._http.aclose()

    async def _worker(self) -> None:
        while True:
            try:
                worked = await self.deliver_one()
            except Exception:  # the database away, or a bug: the row is due again, later
                logger.exception("delivery round failed")
                worked = False
            if not worked:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.settings.webhook_poll_seconds)

    async def deliver_one(self) -> bool:
        """Attempt the next due delivery; False when none is due."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await repository.claim_due(conn)
            if row is None:
                return False
            # Wake another worker: more may be due.
            self._wake.set()
            if row["deleted_at"] is not None:
                await repository.give_up(conn, row["id"])
                DELIVERIES.labels("failed").inc()
                return True
            await self._attempt(conn, row)
        return True

    async def _attempt(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        attempt = row["attempts"] + 1
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            secret = self._box.open(
                SealedSecret(row["key_id"], row["nonce"], row["ciphertext"]),
                secret_binding(row["webhook_id"]),
            )
            addresses = await check_target(row["url"], allow_private=self.settings.webhook_allow_private)
            status_code = await self._post(row, secret, addresses[0] if addresses else None)
            outcome = "delivered" if 200 <= status_code < 300 else "http_error"
        except RefusedTarget:
            outcome, error = "refused_target", "refused target"
        except DecryptionFailed:
            outcome, error = "network_error", "secret unavailable"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            outcome, error = "network_error", type(exc).__name__
        elapsed = time.monotonic() - started
        ATTEMPTS.labels(outcome).inc()
        ATTEMPT_SECONDS.observe(elapsed)
        status, next_at = self._settle(outcome, attempt, row["created_at"])
        await repository.record_attempt(
            conn,
            row["id"],
            attempt=attempt,
            response_status=status_code,
            error=error,
            duration_ms=int(elapsed * 1000),
            status=status,
            next_attempt_at=next_at,
        )
        if status in ("delivered", "failed"):
            DELIVERIES.labels(status).inc()
        logger.info(
            "webhook attempt",
            extra={
                "deliveryId": str(row["id"]),
                "webhookId": str(row["webhook_id"]),
                "eventId": row["event_id"],
                "attempt": attempt,
                "responseStatus": status_code,
                "outcome": outcome,
                "status": status,
            },
        )

    def _settle(self, outcome: str, attempt: int, created_at: datetime) -> tuple[str, datetime | None]:
        if outcome == "delivered":
            return "delivered", None
        next_at = utcnow() + timedelta(seconds=next_delay(self.settings, attempt))
        if next_at > created_at + timedelta(seconds=self.settings.webhook_retry_window_seconds):
            return "failed", None
        return "retrying", next_at

    async def _post(self, row: asyncpg.Record, secret: str, address: str | None) -> int:
        body: bytes = row["body"]
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Sbx-Webhook-Id": str(row["webhook_id"]),
            "Sbx-Event-Id": row["event_id"],
            "Sbx-Timestamp": timestamp,
            "Sbx-Signature": signature(secret, timestamp, body),
        }
        url: str = row["url"]
        extensions: dict[str, str] = {}
        if address is not None:  # connect to the address just checked (no second lookup)
            url, headers["Host"], extensions = pinned(url, address)
        # The response's body is never read: only its status counts.
        async with self._http.stream(
            "POST", url, content=body, headers=headers, extensions=extensions
        ) as response:
            return response.status_code
