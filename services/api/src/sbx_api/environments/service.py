"""Environments: immutable versions, a per-user quota, soft delete, and encrypted secrets.

Every change runs in one transaction with its audit row, so a failure leaves nothing half
written. Secret values are sealed with AES-256-GCM (bound to environment and key) before they
reach the database and are never returned, logged or put into an error.
"""

from __future__ import annotations

import re
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
from sbx_common.crypto import secret_binding
from sbx_common.errors import Conflict, NotFound, QuotaExceeded, ValidationFailed

from sbx_api.audit import service as audit
from sbx_api.environments import repository
from sbx_api.environments.registries import parse_allowed, refused_registry
from sbx_api.environments.schemas import (
    MAX_SECRETS_PER_ENVIRONMENT,
    SECRET_KEY_PATTERN,
    CreateEnvironmentRequest,
    EnvironmentOut,
    SecretOut,
    UpdateEnvironmentRequest,
    VersionOut,
    dump_ports,
    version_fields,
)
from sbx_api.info.service import check_runtime
from sbx_api.pagination import INT4_MAX, PageParams, int_after, split_page, time_id_after, time_id_key
from sbx_api.state import AppState

TARGET = "environment"
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)


def _not_found() -> NotFound:
    return NotFound("No such environment.")


def _to_out(row: asyncpg.Record, secrets: list[asyncpg.Record]) -> EnvironmentOut:
    spec = repository.EnvironmentVersion.from_row(row)
    return EnvironmentOut.model_validate(
        {
            "id": row["id"],
            "name": row["name"],
            **version_fields(spec),
            "secrets": [{"key": s["key"], "updated_at": s["updated_at"]} for s in secrets],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }
    )


async def _load(conn: asyncpg.Connection, owner_id: uuid.UUID, environment_id: uuid.UUID) -> EnvironmentOut:
    row = await repository.get_environment(conn, owner_id, environment_id)
    if row is None:
        raise _not_found()
    secrets = await repository.secret_keys(conn, [environment_id])
    return _to_out(row, secrets[environment_id])


def _audited(
    state: AppState, owner_id: uuid.UUID, action: str, environment_id: uuid.UUID | None
) -> AbstractAsyncContextManager[audit.Attempt]:
    """The owner's `action` on an environment, audited (see `audit.attempt`)."""
    return audit.attempt(
        state.pool, user_id=owner_id, action=action, target_type=TARGET, target_id=environment_id
    )


async def _locked(conn: asyncpg.Connection, owner_id: uuid.UUID, environment_id: uuid.UUID) -> asyncpg.Record:
    """The owner's live environment, row-locked until the transaction ends; 404 otherwise.

    FOR UPDATE: a sandbox being created right now (which holds the row FOR SHARE, see
    repository.get_version) commits first, and is then seen by whoever holds this lock."""
    row = await repository.get_environment(conn, owner_id, environment_id, for_update=True)
    if row is None:
        raise _not_found()
    return row


def check_registry(state: AppState, image: str) -> None:
    """400 naming `image` when it names a loopback, link-local or private registry the operator
    did not allow (see registries.py)."""
    refused = refused_registry(image, parse_allowed(state.settings.allowed_registries))
    if refused is not None:
        raise ValidationFailed.for_field(
            "image",
            "Images from registries on loopback, link-local or private addresses are not allowed here.",
        )


async def create(state: AppState, owner_id: uuid.UUID, body: CreateEnvironmentRequest) -> EnvironmentOut:
    """Version 1 of a new environment; 409 if the name is taken, 429 over the quota."""
    check_registry(state, body.image)
    await check_runtime(state, body.runtime)
    environment_id = uuid.uuid4()
    limit = state.settings.max_environments_per_user
    spec: dict[str, Any] = {
        "version": 1,
        "image": body.image,
        "cpu": body.cpu,
        "memory": body.memory,
        "ports": dump_ports(body.ports),
        "env": body.env,
        "command": body.command,
        "network": body.network.stored(),
        "runtime": body.runtime,
        "disk": body.disk if body.disk is not None else state.settings.default_disk_mb,
        "warm_pool": body.warm_pool,
    }
    async with (
        _audited(state, owner_id, "environment.create", None) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        await repository.lock_owner_environments(conn, owner_id)
        if await repository.count_active(conn, owner_id) >= limit:
            raise QuotaExceeded(
                f"You have reached the limit of {limit} environments.", details={"limit": limit}
            )
        try:
            await repository.insert_environment(conn, environment_id, owner_id, body.name)
        except asyncpg.UniqueViolationError:
            raise Conflict("An environment with this name already exists.") from None
        await repository.insert_version(conn, environment_id, spec)
        await attempt.succeeded(
            conn, target_id=environment_id, details={"name": body.name, "version": 1, "image": body.image}
        )
        return await _load(conn, owner_id, environment_id)


async def list_environments(
    state: AppState, owner_id: uuid.UUID, page: PageParams
) -> tuple[list[EnvironmentOut], str | None]:
    """The owner's environments (current versions), oldest first."""
    after = time_id_after(page)
    async with state.pool.acquire() as conn:
        rows = await repository.list_environments(conn, owner_id, after=after, limit=page.limit + 1)
        items, next_cursor = split_page(rows, page.limit, lambda r: time_id_key(r["created_at"], r["id"]))
        secrets = await repository.secret_keys(conn, [r["id"] for r in items])
    return [_to_out(r, secrets[r["id"]]) for r in items], next_cursor


async def get(state: AppState, owner_id: uuid.UUID, environment_id: uuid.UUID) -> EnvironmentOut:
    async with state.pool.acquire() as conn:
        return await _load(conn, owner_id, environment_id)


async def list_versions(
    state: AppState, owner_id: uuid.UUID, environment_id: uuid.UUID, page: PageParams
) -> tuple[list[VersionOut], str | None]:
    """Every version of the environment, oldest first."""
    after = int_after(page, INT4_MAX)
    async with state.pool.acquire() as conn:
        if await repository.get_environment(conn, owner_id, environment_id) is None:
            raise _not_found()
        rows = await repository.list_versions(conn, environment_id, after=after, limit=page.limit + 1)
    items, next_cursor = split_page(rows, page.limit, lambda r: [r["version"]])
    return [VersionOut.model_validate(dict(r)) for r in items], next_cursor


async def update(
    state: AppState, owner_id: uuid.UUID, environment_id: uuid.UUID, body: UpdateEnvironmentRequest
) -> EnvironmentOut:
    """Add version N+1: the given fields over the current version. Earlier versions never change."""
    given = body.model_fields_set
    if "image" in given and body.image is not None:
        check_registry(state, body.image)
    if "runtime" in given and body.runtime is not None:
        await check_runtime(state, body.runtime)
    async with (
        _audited(state, owner_id, "environment.update", environment_id) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        row = await _locked(conn, owner_id, environment_id)
        spec = version_fields(repository.EnvironmentVersion.from_row(row))
        for field in (
            "image",
            "cpu",
            "memory",
            "env",
            "command",
            "runtime",
            "disk",
            "warm_pool",
        ):  # only command may be null
            if field in given:
                spec[field] = getattr(body, field)
        if "ports" in given and body.ports is not None:
            spec["ports"] = dump_ports(body.ports)
        if "network" in given and body.network is not None:
            spec["network"] = body.network.stored()
        spec["version"] = row["current_version"] + 1
        await repository.insert_version(conn, environment_id, spec)
        await repository.set_current_version(conn, environment_id, spec["version"])
        await attempt.succeeded(conn, details={"version": spec["version"], "fields": sorted(given)})
        return await _load(conn, owner_id, environment_id)


async def delete(state: AppState, owner_id: uuid.UUID, environment_id: uuid.UUID) -> None:
    """Soft delete; 409 while a sandbox that is not destroyed or expired uses the environment."""
    async with (
        _audited(state, owner_id, "environment.delete", environment_id) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        await _locked(conn, owner_id, environment_id)
        if await repository.has_live_sandboxes(conn, environment_id):
            raise Conflict("Sandboxes still use this environment; destroy them first.")
        await repository.soft_delete(conn, environment_id)
        await attempt.succeeded(conn)


async def set_secret(
    state: AppState, owner_id: uuid.UUID, environment_id: uuid.UUID, key: str, value: str
) -> SecretOut:
    """Encrypt and store (or replace) a secret. The value goes nowhere else."""
    sealed = state.secret_box.seal(value, secret_binding(environment_id, key))
    async with (
        _audited(state, owner_id, "environment.secret.set", environment_id) as attempt,
        state.pool.acquire() as conn,
        conn.transaction(),
    ):
        await _locked(conn, owner_id, environment_id)
        if await repository.count_secrets_except(conn, environment_id, key) >= MAX_SECRETS_PER_ENVIRONMENT:
            raise QuotaExceeded(
                f"An environment holds at most {MAX_SECRETS_PER_ENVIRONMENT} secrets.",
                details={"limit": MAX_SECRETS_PER_ENVIRONMENT},
            )
        row = await repository.upsert_secret(conn, environment_id, key, sealed)
        await repository.touch(conn, environment_id)
        await attempt.succeeded(conn, details={"key": key})
    return SecretOut(key=row["key"], updated_at=row["updated_at"])


async def delete_secret(state: AppState, owner_id: uuid.UUID, environment_id: uuid.UUID, key: str) -> None:
    async with _audited(state, owner_id, "environment.secret.delete", environment_id) as attempt:
        if not _SECRET_KEY.match(key):
            raise NotFound("No such secret.")
        async with state.pool.acquire() as conn, conn.transaction():
            await _locked(conn, owner_id, environment_id)
            if not await repository.delete_secret(conn, environment_id, key):
                raise NotFound("No such secret.")
            await repository.touch(conn, environment_id)
            await attempt.succeeded(conn, details={"key": key})
