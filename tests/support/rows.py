"""Rows written the way the API and the orchestrator would write them.

The orchestrator, the reaper and the collector act on database state (a command recorded but
never published, a transition stuck for minutes, a TTL that passed) that the API cannot be asked
to produce on purpose. These helpers write exactly those states, with timestamps moved into the
past where a test needs age, so the tests do not wait for it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.support.docker import TEST_IMAGE


async def insert_user(pg: asyncpg.Connection, label: str = "seed") -> uuid.UUID:
    """A user row (no usable password: it never logs in)."""
    user_id = uuid.uuid4()
    await pg.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'not-a-hash')",
        user_id,
        f"{label}-{user_id.hex[:12]}@example.com",
    )
    return user_id


async def insert_environment(
    pg: asyncpg.Connection,
    owner_id: uuid.UUID,
    *,
    image: str = TEST_IMAGE,
    cpu: float = 0.5,
    memory: int = 64,
    ports: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> uuid.UUID:
    """An environment with its version 1 (the JSON columns are passed as text, so this works
    whether or not the connection has a jsonb codec)."""
    environment_id = uuid.uuid4()
    await pg.execute(
        "INSERT INTO environments (id, owner_id, name) VALUES ($1, $2, $3)",
        environment_id,
        owner_id,
        f"env-{environment_id.hex[:8]}",
    )
    await pg.execute(
        "INSERT INTO environment_versions"
        " (environment_id, version, image, cpu, memory_mib, ports, env, command)"
        " VALUES ($1, 1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7::text::jsonb)",
        environment_id,
        image,
        cpu,
        memory,
        json.dumps(ports or []),
        json.dumps(env or {}),
        None if command is None else json.dumps(command),
    )
    return environment_id


@dataclass(frozen=True)
class SeededSandbox:
    id: uuid.UUID
    owner_id: uuid.UUID
    environment_id: uuid.UUID
    command_id: uuid.UUID


async def seed_owner(pg: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """A user with one environment (test image, 0.5 CPU, 64 MiB); returns (user id, env id)."""
    user_id = await insert_user(pg)
    return user_id, await insert_environment(pg, user_id)


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
