"""Preview URLs: a signed token for one port of one of the caller's running sandboxes, and the
address a browser opens it at."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

from sbx_common.errors import NotFound, NotRunning
from sbx_common.status import Status
from starlette.requests import Request

from sbx_api.audit import service as audit
from sbx_api.deps import Caller
from sbx_api.ports import repository, tokens
from sbx_api.ports.access import preview_key
from sbx_api.ports.hosts import parse_template
from sbx_api.ports.paths import PREVIEW_PARAM
from sbx_api.ports.schemas import PreviewUrlOut
from sbx_api.state import AppState


def public_base(request: Request, state: AppState) -> str:
    """Where clients reach the API: `SBX_PUBLIC_URL` when set (the address behind a reverse
    proxy or load balancer), else the address this request came to."""
    configured = state.settings.public_url.strip().rstrip("/")
    return configured or str(request.base_url).rstrip("/")


async def create_preview_url(  # noqa: PLR0917 - one call site, each argument named by its type
    request: Request, state: AppState, caller: Caller, sandbox_id: uuid.UUID, port: int, seconds: int
) -> PreviewUrlOut:
    async with audit.attempt(
        state.pool,
        user_id=caller.user_id,
        action="sandbox.preview_url",
        target_type="sandbox",
        target_id=sandbox_id,
    ) as attempt:
        target = await repository.target(state.pool, sandbox_id)
        if target is None or target.owner_id != caller.user_id:
            raise NotFound("No such sandbox.")
        if target.status != Status.RUNNING.value:
            raise NotRunning(f"The sandbox is {target.status}, not running.")
        token = tokens.PreviewToken(sandbox_id, caller.user_id, port, int(time.time()) + seconds)
        signed = tokens.sign(token, preview_key(state))
        await attempt.succeeded(state.pool, details={"port": port, "expiresAt": token.expires_at})
    hosts = parse_template(state.settings.preview_url)
    if hosts is not None:
        base = hosts.base_url(str(sandbox_id), port)
    else:
        base = f"{public_base(request, state)}/sandboxes/{sandbox_id}/ports/{port}"
    url = f"{base}/?{PREVIEW_PARAM}={quote(signed)}"
    return PreviewUrlOut(url=url, expires_at=token.expires)
