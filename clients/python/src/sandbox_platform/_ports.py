"""Requests through the API's port proxy: the sandbox's own answer, or the platform's refusal.

The proxy passes the sandbox server's answers on as they are (any status, any body). Its own
refusals (no credentials, not your sandbox, not running, nothing listening, a bad port) are the
platform's JSON error envelope: those, and only those, become the SDK's typed errors.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from sandbox_platform._core import decode
from sandbox_platform.errors import SandboxPlatformError

#: Statuses the proxy itself answers with (besides whatever the sandbox answers).
PROXY_ERROR_STATUSES = frozenset({400, 401, 404, 409, 429, 502, 503})
PROXY_ERROR_CODES = frozenset(
    {
        "VALIDATION_ERROR",
        "UNAUTHORIZED",
        "NOT_FOUND",
        "NOT_RUNNING",
        "RATE_LIMITED",
        "UPSTREAM_UNAVAILABLE",
        "UNAVAILABLE",
    }
)


def proxy_error(response: httpx.Response) -> SandboxPlatformError | None:
    """The platform's refusal carried by `response` (already read), or None for the sandbox's answer."""
    if response.status_code not in PROXY_ERROR_STATUSES:
        return None
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body: Any = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) and body.get("success") is False else None
    if not isinstance(error, dict) or error.get("code") not in PROXY_ERROR_CODES:
        return None
    return decode(response).error()
