"""Keeping `webhook_deliveries` and their `webhook_delivery_attempts` bounded.

Every `SBX_WEBHOOK_RETENTION_INTERVAL_SECONDS` the service (the tables' one writer) deletes the
settled deliveries (`delivered`, `failed`) that are older than
`SBX_WEBHOOK_DELIVERY_RETENTION_DAYS`, or beyond the newest
`SBX_WEBHOOK_DELIVERY_RETENTION_COUNT` of their webhook; their attempts go with them (the
foreign key cascades). A delivery still `pending` or `retrying` is never deleted, nor one younger
than `MIN_AGE_SECONDS`: its event may not be acked on SBX_EVT yet, and a redelivered event must
still find its row (the row is what keeps it from being delivered twice).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from sbx_webhooks.config import WebhooksSettings
from sbx_webhooks.metrics import PRUNED

logger = logging.getLogger(__name__)

MIN_AGE_SECONDS = 300.0
BATCH = 1000  # rows per statement, so one sweep never holds a long transaction

_PRUNE = """
WITH ranked AS (
    SELECT id, status, created_at,
           row_number() OVER (PARTITION BY webhook_id ORDER BY created_at DESC, id DESC) AS newest
    FROM webhook_deliveries
), doomed AS (
    SELECT id FROM ranked
    WHERE status IN ('delivered', 'failed')
      AND created_at < now() - make_interval(secs => $3)
      AND (created_at < now() - make_interval(secs => $1) OR newest > $2)
    LIMIT $4
), gone AS (
    DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id RETURNING 1
)
SELECT count(*) FROM gone
"""


async def prune(pool: asyncpg.Pool, *, max_age_seconds: float, keep: int) -> int:
    """Delete what the retention allows; the number of deliveries deleted."""
    total = 0
    while True:
        deleted = int(await pool.fetchval(_PRUNE, max_age_seconds, keep, MIN_AGE_SECONDS, BATCH) or 0)
        total += deleted
        if deleted < BATCH:
            return total


async def retention_loop(settings: WebhooksSettings, pool: asyncpg.Pool) -> None:
    while True:
        try:
            deleted = await prune(
                pool,
                max_age_seconds=settings.webhook_delivery_retention_days * 86400,
                keep=settings.webhook_delivery_retention_count,
            )
        except (asyncpg.PostgresError, OSError) as exc:
            logger.warning("pruning webhook deliveries failed", extra={"error": repr(exc)})
        else:
            if deleted:
                PRUNED.inc(deleted)
                logger.info("webhook deliveries pruned", extra={"count": deleted})
        await asyncio.sleep(settings.webhook_retention_interval_seconds)
