"""Every error leaves the API in the contract's envelope; never a 422, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sbx_common.errors import (
    InternalError,
    NotFound,
    PayloadTooLarge,
    PlatformError,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from sbx_api.deps import settle_before_error

logger = logging.getLogger(__name__)

# A dependency (PostgreSQL, NATS) that is down or unreachable: 503, not a 500. A transaction cut
# short rolls back, so the request changed nothing.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash, cannot connect now
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # e.g. "connection is closed"
    asyncpg.exceptions.InternalClientError,  # a connection cut mid-protocol by the server
    # Refusals while the pool opens a new connection: database closed to connections, gone,
    # or credentials no longer accepted.
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    OSError,  # connection refused/reset, and timeouts (TimeoutError is an OSError)
)


def _path_of(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "body"  # its location is a byte offset, not a field
    loc = error.get("loc", ())
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _message_of(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "The body is not valid JSON."
    if error.get("type") == "missing":
        return "This field is required."
    if error.get("type") == "extra_forbidden":
        return "This field is not allowed."
    return str(error.get("msg", "Invalid value.")).removeprefix("Value error, ")


def validation_error(exc: RequestValidationError) -> ValidationFailed:
    errors = [{"path": _path_of(e), "message": _message_of(e)} for e in exc.errors()]
    return ValidationFailed(details={"errors": errors})


# Framework errors outside the contract's table keep their HTTP status and get a code of their own.
_HTTP_CODES = {405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 415: "UNSUPPORTED_MEDIA_TYPE"}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette reports only the first route's)."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def render(exc: PlatformError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> JSONResponse:
        return render(await settle_before_error(request) or exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return render(await settle_before_error(request) or validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        refusal = await settle_before_error(request)
        if refusal is not None:
            return render(refusal)
        if isinstance(exc.__cause__, PlatformError):
            # e.g. the body size limit tripping while FastAPI reads a chunked body.
            return render(exc.__cause__)
        if exc.status_code == 404:
            return render(NotFound("No such route."))
        if exc.status_code == 400:
            return render(
                ValidationFailed(details={"errors": [{"path": "body", "message": str(exc.detail)}]})
            )
        if exc.status_code == 413:
            return render(PayloadTooLarge())
        headers = exc.headers
        if exc.status_code == 405:
            headers = {"Allow": ", ".join(_allowed_methods(request))}
        code = _HTTP_CODES.get(exc.status_code, "INTERNAL_ERROR" if exc.status_code >= 500 else "ERROR")
        body = {"success": False, "error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def dependency_down(_request: Request, exc: Exception) -> JSONResponse:
        logger.warning("dependency unavailable", extra={"error": repr(exc)})
        return render(Unavailable())

    for error_type in DEPENDENCY_ERRORS:
        app.add_exception_handler(error_type, dependency_down)

    @app.exception_handler(asyncpg.DataError)
    async def data_error(_request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # A value the request validation let through but PostgreSQL refuses (out of a column's
        # range, a character it cannot store). The transaction rolled back: nothing changed.
        logger.warning("value refused by the database", extra={"error": type(exc).__name__})
        message = "A value in the request is out of range or holds a character that is not accepted."
        return render(ValidationFailed.for_field("request", message))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return render(InternalError())
