"""Migrations apply to an empty database, are recorded, and are idempotent."""

from __future__ import annotations

import uuid

import asyncpg
from sbx_common import db


async def test_migrations_apply_to_empty_database_and_are_idempotent(migrated: str) -> None:
    admin = await asyncpg.connect(migrated)
    name = f"mig_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = migrated.rsplit("/", 1)[0] + f"/{name}"
        first = await db.migrate(dsn)
        assert first == [m for m, _ in db.list_migrations()]
        second = await db.migrate(dsn)
        assert second == []
        conn = await asyncpg.connect(dsn)
        try:
            recorded = [
                r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
            ]
            tables = {
                r["tablename"]
                for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
        finally:
            await conn.close()
        assert recorded == first
        assert {
            "users",
            "api_keys",
            "environments",
            "environment_versions",
            "environment_secrets",
            "sandboxes",
            "sandbox_runtime",
            "audit_events",
            "sandbox_logs",
        } <= tables
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
