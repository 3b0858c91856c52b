"""The audit trail: who did what to which target, with which outcome, under which trace id.

Every mutating route records its action here, successes inside the transaction of the change
(so a change and its audit row commit together), failures after the fact. Other domains call
`record` the same way, e.g. `await audit.record(conn, user_id=..., action="sandbox.create", ...)`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any

import asyncpg
from sbx_common.errors import PlatformError
from sbx_common.logging import trace_id_var

from sbx_api.audit import repository
from sbx_api.audit.repository import Executor
from sbx_api.audit.schemas import AuditEvent
from sbx_api.pagination import INT8_MAX, PageParams, int_after, split_page


class Outcome(StrEnum):
    SUCCESS = "success"
    # Refused for who the caller is: bad credentials, or a target that is not theirs.
    DENIED = "denied"
    # Refused for what was asked: a conflict, a quota, an invalid state.
    FAILED = "failed"


async def record(
    db: Executor,
    *,
    user_id: uuid.UUID | None,
    action: str,
    target_type: str | None,
    target_id: uuid.UUID | str | None,
    outcome: Outcome | str,
    trace_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event. `db` is a connection (to join its transaction) or the pool.

    `trace_id` defaults to the current request's. `details` must hold no secret values.
    """
    await repository.insert(
        db,
        user_id=user_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        outcome=str(outcome),
        trace_id=trace_id if trace_id is not None else trace_id_var.get(),
        details=details or {},
    )


def outcome_of(error: PlatformError) -> Outcome:
    return Outcome.DENIED if error.status_code in (401, 403, 404) else Outcome.FAILED


@asynccontextmanager
async def failures(
    db: Executor,
    *,
    user_id: uuid.UUID | None,
    action: str,
    target_type: str | None,
    target_id: uuid.UUID | str | None = None,
) -> AsyncIterator[None]:
    """Record the action as denied/failed when the block raises a PlatformError (then re-raise).

    Successes are recorded by the block itself, inside its transaction.
    """
    try:
        yield
    except PlatformError as exc:
        await record(
            db,
            user_id=user_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome_of(exc),
            details={"code": exc.code},
        )
        raise


async def list_events(
    pool: asyncpg.Pool, user_id: uuid.UUID, page: PageParams
) -> tuple[list[AuditEvent], str | None]:
    """The user's own events, newest first."""
    async with pool.acquire() as conn:
        before_id = int_after(page, INT8_MAX)
        rows = await repository.list_for_user(conn, user_id, before_id=before_id, limit=page.limit + 1)
    items, next_cursor = split_page(rows, page.limit, lambda r: [r["id"]])
    return [AuditEvent.model_validate({**dict(r), "id": str(r["id"])}) for r in items], next_cursor
