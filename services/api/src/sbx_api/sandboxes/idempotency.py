"""`Idempotency-Key` on the lifecycle routes: a repeat returns the first answer and acts no more.

How it works: the first request claims the key by inserting a placeholder row (status 0) into
`idempotency_keys`; the primary key (user, key) lets exactly one of several concurrent requests
win. The winner acts and then stores its status code and body. Decisions:
- a repeat while the first is still running gets 409 `CONFLICT` (retry later);
- a key reused for a different request (another route, sandbox or body) gets 400
  `VALIDATION_ERROR` on the `Idempotency-Key` header;
- answers with a 5xx status or 429 (nothing was done) are not remembered: the placeholder is
  removed and a retry with the same key acts; except the 503 of a change that is recorded and
  will be carried out later (`RecordedForLater`), which is remembered like a success;
- keys are remembered for 24 hours; a placeholder left by a crashed API is abandoned after
  15 minutes (longer than the longest `?wait=`).
Replayed answers carry the header `Idempotent-Replayed: true`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi.responses import JSONResponse
from sbx_common.errors import Conflict, PlatformError, RecordedForLater, ValidationFailed

from sbx_api.exception_handlers import render

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_IN_PROGRESS = 0

Action = Callable[[], Awaitable[JSONResponse]]


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


async def run_once(
    pool: asyncpg.Pool, user_id: uuid.UUID, key: str | None, request_hash: str, action: Action
) -> JSONResponse:
    """Run `action` once per (user, key); repeats get the remembered answer."""
    if key is None:
        return await action()
    if not _KEY.match(key):
        raise ValidationFailed.for_field(HEADER, "Must be 1-255 visible ASCII characters.")
    replay = await _claim(pool, user_id, key, request_hash)
    if replay is not None:
        return replay
    recorded = False  # a 503 whose change will still be carried out
    try:
        response = await action()
    except PlatformError as exc:
        response = render(exc)
        recorded = isinstance(exc, RecordedForLater)
    except BaseException:
        await _release(pool, user_id, key)
        raise
    try:
        if (response.status_code >= 500 or response.status_code == 429) and not recorded:
            await _release(pool, user_id, key)
        else:
            await _remember(pool, user_id, key, response)
    except (asyncpg.PostgresError, OSError) as exc:
        # The action is done and its answer is right; only the memory of it is lost (the
        # placeholder is abandoned after 15 minutes).
        logger.warning("idempotency key not stored", extra={"error": repr(exc)})
    return response


async def _claim(pool: asyncpg.Pool, user_id: uuid.UUID, key: str, request_hash: str) -> JSONResponse | None:
    """None when this request owns the key now; otherwise the answer to give instead."""
    async with pool.acquire() as conn:
        for _ in range(3):
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2"
                " AND (created_at < now() - interval '24 hours'"
                "      OR (status_code = $3 AND created_at < now() - interval '15 minutes'))",
                user_id,
                key,
                _IN_PROGRESS,
            )
            claimed = await conn.fetchval(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response_body)"
                " VALUES ($1, $2, $3, $4, '{}'::jsonb) ON CONFLICT DO NOTHING RETURNING true",
                user_id,
                key,
                request_hash,
                _IN_PROGRESS,
            )
            if claimed:
                return None
            first = await conn.fetchrow(
                "SELECT request_hash, status_code, response_body FROM idempotency_keys"
                " WHERE user_id = $1 AND key = $2",
                user_id,
                key,
            )
            if first is None:
                continue  # the first request gave the key back meanwhile: try again
            if first["request_hash"] != request_hash:
                raise ValidationFailed.for_field(
                    HEADER, "This key was already used for a different request; use a new key."
                )
            if first["status_code"] == _IN_PROGRESS:
                raise Conflict("A request with this Idempotency-Key is still in progress; retry later.")
            return JSONResponse(
                first["response_body"],
                status_code=first["status_code"],
                headers={"Idempotent-Replayed": "true"},
            )
    raise Conflict("A request with this Idempotency-Key is still in progress; retry later.")


async def _remember(pool: asyncpg.Pool, user_id: uuid.UUID, key: str, response: JSONResponse) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, response_body = $4"
            " WHERE user_id = $1 AND key = $2",
            user_id,
            key,
            response.status_code,
            json.loads(bytes(response.body)),
        )


async def _release(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status_code = $3",
            user_id,
            key,
            _IN_PROGRESS,
        )
