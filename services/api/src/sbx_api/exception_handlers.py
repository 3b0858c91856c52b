"""Every error leaves the API in the contract's envelope; never a 422, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sbx_common.errors import InternalError, NotFound, PlatformError, RateLimited, ValidationFailed
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


def _path_of(loc: tuple[Any, ...] | list[Any]) -> str:
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
    errors = [{"path": _path_of(e.get("loc", ())), "message": _message_of(e)} for e in exc.errors()]
    return ValidationFailed(details={"errors": errors})


def render(exc: PlatformError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def platform_error(_request: Request, exc: PlatformError) -> JSONResponse:
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return render(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, PlatformError):
            # e.g. the body size limit tripping while FastAPI reads a chunked body.
            return render(exc.__cause__)
        if exc.status_code == 404:
            return render(NotFound("No such route."))
        if exc.status_code == 405:
            body = {
                "success": False,
                "error": {"code": "METHOD_NOT_ALLOWED", "message": "Method not allowed."},
            }
            return JSONResponse(body, status_code=405)
        return render(PlatformError(str(exc.detail)))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return render(InternalError())
