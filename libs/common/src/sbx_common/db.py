"""PostgreSQL access: the asyncpg pool and the ordered SQL migrations."""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x5B8_0001  # pg_advisory_lock key: one migrator at a time


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come and go as Python objects.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class NoSessionResetConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection returned without asyncpg's reset query (`pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`): one round trip saved per acquire, for code that keeps no
    session state on pooled connections (no session advisory locks, LISTEN, SET or cursors left
    open). An open transaction is still rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, session_reset: bool = True
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        connection_class=asyncpg.Connection if session_reset else NoSessionResetConnection,
    )
    assert pool is not None
    return pool


async def reachable(pool: asyncpg.Pool, wait_seconds: float = 2.0) -> bool:
    """Whether the pool gets a connection within `wait_seconds` and it answers (readiness)."""
    try:
        async with pool.acquire(timeout=wait_seconds) as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


def list_migrations() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("sbx_common") / "migrations"
    files = sorted(f.name for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name, (folder / name).read_text()) for name in files]


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet recorded in `schema_migrations`; returns their names.

    Safe to run concurrently (an advisory lock serialises migrators) and repeatedly.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, sql in list_migrations():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            logger.info("migration applied", extra={"migration": name})
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def migrate(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def record_to_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(record) if record is not None else None
