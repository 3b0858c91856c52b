"""The served OpenAPI document tells the contract's truth about errors.

FastAPI documents a 422 `HTTPValidationError` on every route that takes input; this API never
answers 422 (bad input is 400 `VALIDATION_ERROR`) and wraps every error in one envelope. The
document is rewritten once, when first asked for, to say so.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    """`{"success": false, "error": {...}}`, the shape of every error answer."""

    success: bool = False
    error: ErrorBody


_ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_VALIDATION = {
    "description": "VALIDATION_ERROR: malformed JSON, wrong types or out-of-range values; "
    "`details.errors` lists `{path, message}` per field.",
    "content": {"application/json": {"schema": _ERROR_REF}},
}
_OTHER_ERRORS = {
    "description": "An error in the envelope: UNAUTHORIZED (401), NOT_FOUND (404), CONFLICT, "
    "INVALID_STATE or NOT_RUNNING (409), PAYLOAD_TOO_LARGE (413), QUOTA_EXCEEDED or RATE_LIMITED "
    "(429, with Retry-After), UNAVAILABLE (503).",
    "content": {"application/json": {"schema": _ERROR_REF}},
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's 422 with the 400 envelope and give every operation the error envelope."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None:
                responses["400"] = _VALIDATION
            responses.setdefault("default", _OTHER_ERRORS)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise
