"""What the reaper reads from PostgreSQL; it writes nothing. Every read goes through
`sandbox_view`, which derives the status a user sees."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sbx_common.status import TERMINAL, TRANSITIONAL, Status

# Statuses in which the TTL no longer applies: ended, or already being destroyed by the user.
NO_TTL = frozenset({*TERMINAL, Status.DESTROYING})


def _values(statuses: frozenset[Status]) -> list[str]:
    """A status set as a `text[]` query parameter."""
    return sorted(status.value for status in statuses)


@dataclass(frozen=True)
class Expiry:
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    status: str
    remaining: float  # seconds until expires_at by the database's clock (negative: overdue)
    expires_at: datetime
    on_expire: str  # "destroy" | "stop" | "pause"
    host_id: str  # where its commands go


# `active_expires_at`: the expiry still to enforce (NULL once a TTL stop or pause spent it).
_EXPIRY_SELECT = (
    "SELECT id, owner_id, status, on_expire, active_expires_at AS expires_at, host_id,"
    " extract(epoch FROM active_expires_at - now())::float8 AS remaining"
    " FROM sandbox_view"
)


def _expiry(row: asyncpg.Record) -> Expiry:
    return Expiry(
        sandbox_id=row["id"],
        owner_id=row["owner_id"],
        status=row["status"],
        remaining=row["remaining"],
        expires_at=row["expires_at"],
        on_expire=row["on_expire"],
        host_id=row["host_id"],
    )


@dataclass(frozen=True)
class Unsettled:
    """A sandbox whose latest API command has not settled."""

    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    command_id: uuid.UUID
    verb: str
    status: str
    taken_up: bool  # the orchestrator took the command up (and is stuck), or never saw it
    age: float  # seconds since the command was sent (not taken up) or last runtime change
    host_id: str


class SandboxReader:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def expiring_within(self, seconds: float) -> list[Expiry]:
        """Sandboxes the TTL applies to whose `expires_at` is at most `seconds` away (or past)."""
        rows = await self._pool.fetch(
            _EXPIRY_SELECT
            + " WHERE active_expires_at <= now() + make_interval(secs => $1) AND status <> ALL($2::text[])"
            " ORDER BY active_expires_at",
            seconds,
            _values(NO_TTL),
        )
        return [_expiry(r) for r in rows]

    async def expiry_of(self, sandbox_id: uuid.UUID) -> Expiry | None:
        row = await self._pool.fetchrow(
            _EXPIRY_SELECT + " WHERE id = $1 AND active_expires_at IS NOT NULL", sandbox_id
        )
        return _expiry(row) if row is not None else None

    async def unsettled(self, untaken_after: float, stuck_after: float) -> list[Unsettled]:
        """API commands not taken up for `untaken_after` s, or taken up and stuck `stuck_after` s."""
        rows = await self._pool.fetch(
            "WITH v AS ("
            "  SELECT id, owner_id, last_command_id, last_command_verb, status, host_id,"
            "         applied_command_id IS NOT DISTINCT FROM last_command_id AS taken_up,"
            "         last_command_at, runtime_updated_at"
            "  FROM sandbox_view WHERE status = ANY($1::text[])"
            ")"
            " SELECT id, owner_id, last_command_id, last_command_verb, status, taken_up, host_id,"
            "        extract(epoch FROM now() - CASE WHEN taken_up THEN runtime_updated_at"
            "                                        ELSE last_command_at END)::float8 AS age"
            " FROM v"
            " WHERE (NOT taken_up AND last_command_at <= now() - make_interval(secs => $2))"
            "    OR (taken_up AND runtime_updated_at <= now() - make_interval(secs => $3))",
            _values(TRANSITIONAL),
            untaken_after,
            stuck_after,
        )
        return [
            Unsettled(
                sandbox_id=r["id"],
                owner_id=r["owner_id"],
                command_id=r["last_command_id"],
                verb=r["last_command_verb"],
                status=r["status"],
                taken_up=r["taken_up"],
                age=r["age"],
                host_id=r["host_id"],
            )
            for r in rows
        ]

    async def live_ids(self, sandbox_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `sandbox_ids` that have a row and are not terminal, or are a warm pool's slot
        (a container waiting for its sandbox: see docs/warm-pools.md)."""
        if not sandbox_ids:
            return set()
        rows = await self._pool.fetch(
            "SELECT id FROM sandbox_view WHERE id = ANY($1::uuid[]) AND status <> ALL($2::text[])"
            " UNION SELECT id FROM warm_pool_slots WHERE id = ANY($1::uuid[])",
            sandbox_ids,
            _values(TERMINAL),
        )
        return {r["id"] for r in rows}
