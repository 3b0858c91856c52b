"""Pages for browsers: the web dashboard at `/ui/` and the API's documentation at `/docs`.

Neither is part of the API's contract, so both stay out of the OpenAPI document; both are sent
with a strict Content-Security-Policy (`headers.py`)."""

from __future__ import annotations

from fastapi import FastAPI

from sbx_api.config import ApiSettings
from sbx_api.webui import dashboard, docs


def install(app: FastAPI, settings: ApiSettings) -> None:
    dashboard.install(app, settings)
    docs.install(app)
