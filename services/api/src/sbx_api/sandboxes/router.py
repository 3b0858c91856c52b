"""Routes of the sandboxes domain (the "Sandboxes" part of the contract, see `/openapi.json`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sbx_common.errors import ValidationFailed
from sbx_common.status import Status, Verb

from sbx_api import ratelimit, usage
from sbx_api.deps import Caller, CurrentUser, SelfAuthenticatingCaller, State, parse_id
from sbx_api.environments.schemas import NetworkPolicyIn, NetworkPolicyOut
from sbx_api.pagination import Page, time_id_key
from sbx_api.responses import ok, page
from sbx_api.sandboxes import idempotency, service
from sbx_api.sandboxes.exec import run_command
from sbx_api.sandboxes.metrics import latest_sample
from sbx_api.sandboxes.repository import SandboxRow
from sbx_api.sandboxes.schemas import (
    CreateSandboxRequest,
    Endpoint,
    ExecOut,
    ExecRequestBody,
    LogLineOut,
    MetricsOut,
    ReplicateSandboxRequest,
    SandboxOut,
    UpdateSandboxRequest,
)
from sbx_api.schemas import Envelope, PageEnvelope
from sbx_api.state import AppState

router = APIRouter(prefix="/sandboxes", tags=["sandboxes"])

WAIT_DEFAULT = 30.0
WAIT_MAX = 300.0
METADATA_FILTER_PREFIX = "metadata."

Wait = Annotated[
    bool,
    Query(
        description=(
            "Answer once the sandbox has settled (running, stopped, paused, destroyed, expired or failed)."
        )
    ),
]
WaitTimeout = Annotated[
    float,
    Query(
        alias="timeout",
        ge=0,
        le=WAIT_MAX,
        description="With wait=true: the longest wait in seconds (default 30, max 300).",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="A repeat with the same key by the same user returns the first answer and acts no more.",
    ),
]

_SANDBOX = {"model": Envelope[SandboxOut]}
_LIFECYCLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {**_SANDBOX, "description": "Nothing to do (start on running, stop on stopped)."},
    202: {**_SANDBOX, "description": "Accepted: the sandbox in its new transitional status."},
    409: {"description": "INVALID_STATE: not allowed from the current status."},
}


def sandbox_out(row: SandboxRow) -> SandboxOut:
    return SandboxOut(
        id=row.id,
        name=row.name,
        environment_id=row.environment_id,
        environment_version=row.environment_version,
        status=row.status,
        status_reason=row.status_reason,
        image=row.image,
        cpu=row.cpu,
        memory=row.memory_mib,
        runtime=row.runtime,
        disk=row.disk_mib,
        env=row.env,
        metadata=row.metadata,
        endpoints=[Endpoint.model_validate(e) for e in row.endpoints],
        network=NetworkPolicyOut.model_validate(row.network),
        created_at=row.created_at,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        expires_at=row.expires_at,
        destroyed_at=row.destroyed_at,
        on_expire=row.on_expire,
        host_id=row.host_id,
    )


def _answer(outcome: service.Outcome) -> JSONResponse:
    """A lifecycle call's answer: the sandbox as it then is, with the outcome's status code."""
    return ok(sandbox_out(outcome.sandbox).dump(), outcome.status_code)


@dataclass(frozen=True)
class LifecycleCall:
    """What every lifecycle route shares: the caller, `?wait`, and `Idempotency-Key`."""

    request: Request
    state: AppState
    caller: Caller
    idempotency_key: str | None
    wait: float | None  # seconds to wait for the sandbox to settle, None without ?wait=true

    async def once(self, body: Any, action: idempotency.Action) -> JSONResponse:
        request_hash = idempotency.fingerprint(self.request.method, self.request.url.path, body)
        return await idempotency.run_once(
            self.state.pool, self.caller.user_id, self.idempotency_key, request_hash, action
        )

    async def limit_creates(self) -> None:
        """`SBX_SANDBOX_CREATE_RATE_LIMIT`: creates and replicates per minute per user, counted
        per attempt (a replayed Idempotency-Key answer is not an attempt)."""
        limit = ratelimit.per_minutes(self.state.settings.sandbox_create_rate_limit)
        await ratelimit.enforce(self.request, "sandbox-create", str(self.caller.user_id), limit)


async def lifecycle_call(
    *,
    request: Request,
    state: State,
    caller: CurrentUser,
    idempotency_key: IdempotencyKey = None,
    wait: Wait = False,
    wait_timeout: WaitTimeout = WAIT_DEFAULT,
) -> LifecycleCall:
    return LifecycleCall(request, state, caller, idempotency_key, wait_timeout if wait else None)


Call = Annotated[LifecycleCall, Depends(lifecycle_call)]


@router.post("", status_code=201, response_model=None, responses={201: _SANDBOX})
async def create_sandbox(body: CreateSandboxRequest, call: Call) -> JSONResponse:
    """Create a sandbox from an environment (its current version unless one is named), or from
    a snapshot (`snapshotId`: its files, with its environment version's settings)."""
    body.check()

    async def action() -> JSONResponse:
        await call.limit_creates()
        return _answer(await service.create(call.state, call.caller, body, call.wait))

    return await call.once(body.model_dump(mode="json"), action)


@router.get("", response_model=None, responses={200: {"model": PageEnvelope[SandboxOut]}})
async def list_sandboxes(
    *,
    request: Request,
    state: State,
    caller: SelfAuthenticatingCaller,
    status: Annotated[
        str | None,
        Query(
            description="One status or a comma separated list; by default destroyed and expired are left out."
        ),
    ] = None,
    environment_id: Annotated[str | None, Query(alias="environmentId")] = None,
    params: Page,
) -> JSONResponse:
    """The caller's sandboxes, newest first. `metadata.<key>=<value>` filters on metadata."""
    rows, next_cursor = await service.list_page(
        state,
        caller,
        params,
        statuses=_statuses(status),
        environment_id=uuid_filter("environmentId", environment_id),
        metadata=_metadata_filter(request),
    )
    return page(
        [sandbox_out(r) for r in rows],
        next_cursor,
        max_bytes=state.settings.max_page_bytes,
        key_of=lambda item: time_id_key(item.created_at, item.id),
    )


def _statuses(value: str | None) -> list[str] | None:
    if value is None:
        return None
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    known = {s.value for s in Status}
    unknown = [s for s in wanted if s not in known]
    if unknown or not wanted:
        raise ValidationFailed.for_field("status", f"Must be one or more of: {', '.join(sorted(known))}.")
    return wanted


def uuid_filter(name: str, value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed.for_field(name, "Must be a UUID.") from None


def _metadata_filter(request: Request) -> dict[str, str] | None:
    found = {
        name.removeprefix(METADATA_FILTER_PREFIX): value
        for name, value in request.query_params.multi_items()
        if name.startswith(METADATA_FILTER_PREFIX)
    }
    if any(not key for key in found):
        raise ValidationFailed.for_field("metadata", "Use metadata.<key>=<value>.")
    return found or None


@router.get("/{sandbox_id}", response_model=None, responses={200: _SANDBOX})
async def get_sandbox(sandbox_id: str, state: State, caller: SelfAuthenticatingCaller) -> JSONResponse:
    """One sandbox, also once destroyed."""
    return ok(sandbox_out(await service.get(state, caller, parse_id(sandbox_id))).dump())


async def _act(verb: Verb, sandbox_id: str, call: LifecycleCall) -> JSONResponse:
    parsed = parse_id(sandbox_id)

    async def action() -> JSONResponse:
        return _answer(await service.act(call.state, call.caller, parsed, verb, call.wait))

    return await call.once(None, action)


@router.post("/{sandbox_id}/start", response_model=None, responses=_LIFECYCLE_RESPONSES)
async def start_sandbox(sandbox_id: str, call: Call) -> JSONResponse:
    """Start a stopped sandbox (202 `starting`); on a running one, nothing happens (200)."""
    return await _act(Verb.START, sandbox_id, call)


@router.post("/{sandbox_id}/stop", response_model=None, responses=_LIFECYCLE_RESPONSES)
async def stop_sandbox(sandbox_id: str, call: Call) -> JSONResponse:
    """Stop a sandbox (202 `stopping`); on a stopped one, nothing happens (200)."""
    return await _act(Verb.STOP, sandbox_id, call)


@router.post("/{sandbox_id}/restart", response_model=None, responses=_LIFECYCLE_RESPONSES)
async def restart_sandbox(sandbox_id: str, call: Call) -> JSONResponse:
    """Restart a running or stopped sandbox (202 `restarting`)."""
    return await _act(Verb.RESTART, sandbox_id, call)


@router.delete("/{sandbox_id}", response_model=None, responses=_LIFECYCLE_RESPONSES)
async def destroy_sandbox(sandbox_id: str, call: Call) -> JSONResponse:
    """Destroy a sandbox (202 `destroying`): its container is removed, then it is `destroyed`."""
    return await _act(Verb.DESTROY, sandbox_id, call)


@router.post("/{sandbox_id}/pause", response_model=None, responses=_LIFECYCLE_RESPONSES)
async def pause_sandbox(sandbox_id: str, call: Call) -> JSONResponse:
    """Pause a running sandbox (202 `pausing`, then `paused`): its processes are frozen, memory
    and files kept. Exec and terminals answer 409 `NOT_RUNNING` until it is resumed."""
    return await _act(Verb.PAUSE, sandbox_id, call)


@router.post("/{sandbox_id}/resume", response_model=None, responses=_LIFECYCLE_RESPONSES)
async def resume_sandbox(sandbox_id: str, call: Call) -> JSONResponse:
    """Resume a paused sandbox (202 `resuming`, then `running`): it carries on where it was."""
    return await _act(Verb.RESUME, sandbox_id, call)


@router.patch(
    "/{sandbox_id}",
    response_model=None,
    responses={
        200: {**_SANDBOX, "description": "The sandbox with its new TTL, metadata or onExpire."},
        409: {"description": "INVALID_STATE: the sandbox is destroyed or expired."},
    },
)
async def update_sandbox(
    sandbox_id: str, body: UpdateSandboxRequest, state: State, caller: CurrentUser
) -> JSONResponse:
    """Change the TTL (`ttlSeconds`, counted from now), replace the metadata, or choose what
    happens at expiry (`onExpire`: destroy, stop or pause)."""
    row = await service.update(state, caller, parse_id(sandbox_id), body)
    return ok(sandbox_out(row).dump())


@router.patch(
    "/{sandbox_id}/network",
    response_model=None,
    responses={
        200: {**_SANDBOX, "description": "The policy is recorded and sent to the orchestrator."},
        409: {"description": "INVALID_STATE: the sandbox is destroyed or expired."},
    },
)
async def update_sandbox_network(
    sandbox_id: str, body: NetworkPolicyIn, state: State, caller: CurrentUser
) -> JSONResponse:
    """Change what the sandbox may reach. A running sandbox follows within a second; a stopped
    one starts with it. The sandbox keeps it until the next change (its environment's `network`
    is only where it starts)."""
    row = await service.update_network(state, caller, parse_id(sandbox_id), body.stored())
    return ok(sandbox_out(row).dump())


@router.post("/{sandbox_id}/replicate", status_code=201, response_model=None, responses={201: _SANDBOX})
async def replicate_sandbox(
    sandbox_id: str, call: Call, body: Annotated[ReplicateSandboxRequest | None, Body()] = None
) -> JSONResponse:
    """A new sandbox with the source's environment version and env (overrides merged over it)."""
    parsed = parse_id(sandbox_id)
    replica = body or ReplicateSandboxRequest()
    replica.check()

    async def action() -> JSONResponse:
        await call.limit_creates()
        return _answer(await service.replicate(call.state, call.caller, parsed, replica, call.wait))

    return await call.once(replica.model_dump(mode="json"), action)


@router.post(
    "/{sandbox_id}/exec",
    response_model=None,
    responses={200: {"model": Envelope[ExecOut]}, **usage.CAP_RESPONSE},
)
async def exec_in_sandbox(
    *, sandbox_id: str, body: ExecRequestBody, state: State, caller: CurrentUser
) -> JSONResponse:
    """Run a command in a running sandbox and answer with its exit code and output."""
    result = await run_command(state, caller, parse_id(sandbox_id), body)
    return ok(
        ExecOut(
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            duration_ms=result.duration_ms,
            timed_out=result.timed_out,
            truncated=result.stdout_truncated or result.stderr_truncated,
            stdout_truncated=result.stdout_truncated,
            stderr_truncated=result.stderr_truncated,
        ).dump()
    )


@router.get("/{sandbox_id}/logs", response_model=None, responses={200: {"model": Envelope[list[LogLineOut]]}})
async def sandbox_logs(
    *,
    sandbox_id: str,
    state: State,
    caller: CurrentUser,
    tail: Annotated[int, Query(ge=1, le=10_000, description="How many lines at most.")] = 100,
    since: Annotated[
        int | None,
        # Bounded like the logs socket's `since`: past PostgreSQL's bigint it is a validation error.
        Query(ge=0, le=2**62, description="Only lines after this seq (then the oldest `tail` of them)."),
    ] = None,
) -> JSONResponse:
    """Log lines, oldest first: the newest `tail`, or with `since` the first `tail` after it."""
    rows = await service.logs(state, caller, parse_id(sandbox_id), tail, since)
    return ok([LogLineOut(seq=r.seq, stream=r.stream, text=r.text, timestamp=r.ts).dump() for r in rows])


@router.get("/{sandbox_id}/metrics", response_model=None, responses={200: {"model": Envelope[MetricsOut]}})
async def sandbox_metrics(sandbox_id: str, state: State, caller: CurrentUser) -> JSONResponse:
    """The latest resource sample of a running sandbox (409 `NOT_RUNNING` otherwise)."""
    return ok(await latest_sample(state, caller, parse_id(sandbox_id)))
