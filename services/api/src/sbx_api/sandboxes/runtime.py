"""Calls into a running sandbox: exec (NATS request/reply to the orchestrator, `sbx.rpc.exec`)
and the latest metrics sample (JetStream KV `sbx_metrics`, written by the metrics collector)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import nats.errors
import nats.js.errors
from pydantic import ValidationError
from sbx_common import subjects, telemetry
from sbx_common.errors import InvalidState, NotFound, NotRunning, PlatformError, Unavailable, ValidationFailed
from sbx_common.logging import trace_id_var
from sbx_common.messages import ExecRequest, ExecResult
from sbx_common.status import Status
from sbx_common.topology import KV_METRICS

from sbx_api.audit import service as audit
from sbx_api.audit.service import Outcome as AuditOutcome
from sbx_api.deps import Caller
from sbx_api.sandboxes.schemas import ExecRequestBody
from sbx_api.sandboxes.service import TARGET, get
from sbx_api.state import AppState

logger = logging.getLogger(__name__)

# The orchestrator gets this long beyond the command's own timeout to answer an exec.
EXEC_REPLY_MARGIN_SECONDS = 5.0
# Right after a sandbox starts, the metrics collector may not have sampled it yet.
FIRST_SAMPLE_WAIT_SECONDS = 3.0

# Error codes an orchestrator's ExecResult may carry, and the errors they become here.
_ERRORS_BY_CODE: dict[str, type[PlatformError]] = {
    cls.code: cls for cls in (NotRunning, NotFound, ValidationFailed, Unavailable, InvalidState)
}


async def metrics(state: AppState, caller: Caller, sandbox_id: uuid.UUID) -> dict[str, Any]:
    """The latest sample from KV `sbx_metrics`. A running sandbox not sampled yet is waited for
    up to FIRST_SAMPLE_WAIT_SECONDS (the next KV put), then 503 `UNAVAILABLE`."""
    row = await get(state, caller, sandbox_id)
    if row["status"] != Status.RUNNING:
        raise NotRunning(f"The sandbox is {row['status']}; metrics exist only while it runs.")
    key = str(sandbox_id)
    try:
        bucket = await state.js.key_value(KV_METRICS)
        try:
            entry = await bucket.get(key)
            value = entry.value
        except nats.js.errors.KeyNotFoundError:
            value = await _next_sample(state, key)
    except (nats.errors.Error, TimeoutError) as exc:
        raise Unavailable("Metrics are unavailable right now.") from exc
    if value is None:
        raise Unavailable("No metrics sample exists yet for this sandbox; retry in a moment.")
    try:
        sample = json.loads(value)
    except ValueError:
        sample = None
    if not isinstance(sample, dict):
        raise Unavailable("The metrics sample is unreadable.")
    return sample


async def _next_sample(state: AppState, key: str) -> bytes | None:
    sub = await state.nc.subscribe(f"$KV.{KV_METRICS}.{key}")
    try:
        bucket = await state.js.key_value(KV_METRICS)
        try:  # it may have landed between the first get and the subscription
            return (await bucket.get(key)).value
        except nats.js.errors.KeyNotFoundError:
            pass
        try:
            msg = await sub.next_msg(timeout=FIRST_SAMPLE_WAIT_SECONDS)
        except nats.errors.TimeoutError:
            return None
        return msg.data or None
    finally:
        await sub.unsubscribe()


async def exec_command(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, body: ExecRequestBody
) -> ExecResult:
    """Run a command by NATS request/reply to the orchestrator (`sbx.rpc.exec`). Audited with
    its exit code, never with the command line (it may hold credentials)."""
    async with audit.failures(
        state.pool, user_id=caller.user_id, action="sandbox.exec", target_type=TARGET, target_id=sandbox_id
    ):
        row = await get(state, caller, sandbox_id)
        if row["status"] != Status.RUNNING:
            raise NotRunning(f"The sandbox is {row['status']}; commands run only while it runs.")
        request = ExecRequest(
            sandbox_id=sandbox_id,
            owner_id=caller.user_id,
            command=body.argv(),
            timeout_seconds=body.timeout_seconds,
            env=body.env,
            workdir=body.workdir,
            trace_id=trace_id_var.get(),
        )
        try:
            reply = await state.nc.request(
                subjects.RPC_EXEC,
                request.to_bytes(),
                timeout=body.timeout_seconds + EXEC_REPLY_MARGIN_SECONDS,
                headers=telemetry.inject_headers(),
            )
        except nats.errors.NoRespondersError:
            raise Unavailable("No orchestrator is available to run the command.") from None
        except (nats.errors.Error, TimeoutError):
            raise Unavailable("The orchestrator did not answer in time.") from None
        try:
            result = ExecResult.model_validate_json(reply.data)
        except ValidationError:
            logger.warning("unreadable exec reply", extra={"sandboxId": str(sandbox_id)})
            raise Unavailable("The orchestrator's answer was unreadable.") from None
        if result.error_code:
            error = _ERRORS_BY_CODE.get(result.error_code, Unavailable)
            raise error(result.error_message if error is not Unavailable else None)
        await audit.record(
            state.pool,
            user_id=caller.user_id,
            action="sandbox.exec",
            target_type=TARGET,
            target_id=sandbox_id,
            outcome=AuditOutcome.SUCCESS,
            details={"exitCode": result.exit_code, "timedOut": result.timed_out},
        )
        return result
