"""Exec: a command run in a running sandbox by NATS request/reply to the orchestrator
(`sbx.rpc.<hostId>.exec`, the host the
    sandbox runs on), its reply's error codes turned into the API's errors."""

from __future__ import annotations

import logging
import uuid
from typing import Final

import nats.errors
from pydantic import ValidationError
from sbx_common import subjects, telemetry
from sbx_common.codes import ErrorCode
from sbx_common.errors import InvalidState, NotFound, NotRunning, PlatformError, Unavailable, ValidationFailed
from sbx_common.logging import trace_id_var
from sbx_common.messages import ExecRequest, ExecResult
from sbx_common.status import Status

from sbx_api import usage
from sbx_api.deps import Caller
from sbx_api.sandboxes.schemas import ExecRequestBody
from sbx_api.sandboxes.service import audited, get
from sbx_api.state import AppState
from sbx_api.usage import Held

logger = logging.getLogger(__name__)

# The orchestrator gets this long beyond the command's own timeout to answer an exec.
EXEC_REPLY_MARGIN_SECONDS = 5.0

# Error codes an orchestrator's ExecResult may carry, and the errors they become here; any
# other code is its bug and becomes UNAVAILABLE.
_ERRORS_BY_CODE: Final[dict[ErrorCode, type[PlatformError]]] = {
    ErrorCode.NOT_RUNNING: NotRunning,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.VALIDATION_ERROR: ValidationFailed,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.INVALID_STATE: InvalidState,
}


def _error_of(code: str) -> type[PlatformError]:
    try:
        return _ERRORS_BY_CODE.get(ErrorCode(code), Unavailable)
    except ValueError:
        return Unavailable


async def run_command(
    state: AppState, caller: Caller, sandbox_id: uuid.UUID, body: ExecRequestBody
) -> ExecResult:
    """Run a command by NATS request/reply to the orchestrator (`sbx.rpc.exec`). Audited with
    its exit code, never with the command line (it may hold credentials). At most
    SBX_MAX_CONCURRENT_EXECS_PER_USER of a user's commands are under way at once (429 past it)."""
    async with (
        usage.holding(state.usage, Held.EXECS, caller.user_id, state.settings.max_concurrent_execs_per_user),
        audited(state, caller, "sandbox.exec", sandbox_id) as attempt,
    ):
        row = await get(state, caller, sandbox_id)
        if row.status != Status.RUNNING:
            raise NotRunning(f"The sandbox is {row.status}; commands run only while it runs.")
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
                subjects.rpc(row.host_id, subjects.RPC_EXEC),
                request.to_bytes(),
                # The orchestrator may queue the command (fairly between users) before it starts.
                timeout=body.timeout_seconds
                + state.settings.exec_queue_wait_seconds
                + EXEC_REPLY_MARGIN_SECONDS,
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
            error = _error_of(result.error_code)
            raise error(result.error_message if error is not Unavailable else None)
        details = {"exitCode": result.exit_code, "timedOut": result.timed_out}
        await attempt.succeeded(state.pool, details=details)
        return result
