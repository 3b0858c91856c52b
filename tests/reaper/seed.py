"""Rows written the way the API and the orchestrator would write them.

The reaper and the collector act on database state (a command recorded but never published, a
transition stuck for minutes, a TTL that passed) that the API cannot be asked to produce on
purpose. These helpers write exactly those states, with timestamps moved into the past where a
test needs age, so the tests do not wait for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from tests.harness import TEST_IMAGE


@dataclass(frozen=True)
class SeededSandbox:
    id: uuid.UUID
    owner_id: uuid.UUID
    environment_id: uuid.UUID
    command_id: uuid.UUID


async def seed_owner(pg: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """A user with one environment (test image, 0.5 CPU, 64 MiB); returns (user id, env id)."""
    user_id, env_id = uuid.uuid4(), uuid.uuid4()
    await pg.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'not-a-hash')",
        user_id,
        f"seed-{user_id.hex[:12]}@example.com",
    )
    await pg.execute(
        "INSERT INTO environments (id, owner_id, name) VALUES ($1, $2, $3)", env_id, user_id, "seeded"
    )
    await pg.execute(
        "INSERT INTO environment_versions (environment_id, version, image, cpu, memory_mib)"
        " VALUES ($1, 1, $2, 0.5, 64)",
        env_id,
        TEST_IMAGE,
    )
    return user_id, env_id


async def seed_sandbox(
    pg: asyncpg.Connection,
    *,
    verb: str = "create",
    command_age: float = 0.0,
    expires_in: float = 3600.0,
    runtime_status: str | None = None,
    runtime_age: float = 0.0,
    taken_up: bool = True,
) -> SeededSandbox:
    """A sandbox row whose last API command is `verb`, sent `command_age` seconds ago.

    With `runtime_status`, a runtime row as the orchestrator writes it: that status, last
    changed `runtime_age` seconds ago, having taken up the API's command when `taken_up`.
    """
    owner_id, env_id = await seed_owner(pg)
    sandbox_id, command_id = uuid.uuid4(), uuid.uuid4()
    await pg.execute(
        "INSERT INTO sandboxes (id, owner_id, environment_id, environment_version, name, ttl_seconds,"
        " created_at, expires_at, last_command_id, last_command_verb, last_command_at)"
        " VALUES ($1, $2, $3, 1, 'seeded', 3600, now() - make_interval(secs => $4),"
        " now() + make_interval(secs => $5), $6, $7, now() - make_interval(secs => $4))",
        sandbox_id,
        owner_id,
        env_id,
        command_age,
        expires_in,
        command_id,
        verb,
    )
    if runtime_status is not None:
        await pg.execute(
            "INSERT INTO sandbox_runtime (sandbox_id, status, last_command_id, updated_at)"
            " VALUES ($1, $2, $3, now() - make_interval(secs => $4))",
            sandbox_id,
            runtime_status,
            command_id if taken_up else None,
            runtime_age,
        )
    return SeededSandbox(sandbox_id, owner_id, env_id, command_id)


async def view_status(pg: asyncpg.Connection, sandbox_id: uuid.UUID) -> tuple[str, str | None]:
    row = await pg.fetchrow("SELECT status, status_reason FROM sandbox_view WHERE id = $1", sandbox_id)
    assert row is not None
    return row["status"], row["status_reason"]
