"""The audit trail: who did what to which target, with which outcome, under which trace id.

Every mutating route records its action here, successes inside the transaction of the change
(so a change and its audit row commit together), failures after the fact. A route names its
action and target once, in `attempt`:

    async with audit.attempt(state.pool, user_id=..., action="sandbox.stop", target_type=...,
                             target_id=...) as attempt:
        async with state.pool.acquire() as conn, conn.transaction():
            ...  # a PlatformError here is recorded as denied or failed, then re-raised
            await attempt.succeeded(conn, details={...})
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Attempt:
    """One action on one target, as `attempt` opened it."""

    user_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: uuid.UUID | str | None

    async def succeeded(
        self,
        db: Executor,
        *,
        details: dict[str, Any] | None = None,
        user_id: uuid.UUID | None = None,
        target_id: uuid.UUID | str | None = None,
    ) -> None:
        """Record the success; `db` is the change's connection, so both commit together. The
        user and target default to the attempt's (a signup or create learns its id only now)."""
        await record(
            db,
            user_id=user_id if user_id is not None else self.user_id,
            action=self.action,
            target_type=self.target_type,
            target_id=target_id if target_id is not None else self.target_id,
            outcome=Outcome.SUCCESS,
            details=details,
        )

    async def failed(self, db: Executor, error: PlatformError) -> None:
        await record(
            db,
            user_id=self.user_id,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            outcome=outcome_of(error),
            details={"code": error.code},
        )


@asynccontextmanager
async def attempt(
    db: Executor,
    *,
    user_id: uuid.UUID | None,
    action: str,
    target_type: str | None,
    target_id: uuid.UUID | str | None = None,
) -> AsyncIterator[Attempt]:
    """Audit one action: the block records its success with `Attempt.succeeded`; a PlatformError
    out of the block is recorded (on `db`, after the fact) as denied or failed, then re-raised."""
    audited = Attempt(user_id=user_id, action=action, target_type=target_type, target_id=target_id)
    try:
        yield audited
    except PlatformError as exc:
        await audited.failed(db, exc)
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
