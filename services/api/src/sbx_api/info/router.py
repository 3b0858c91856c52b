"""`GET /info`: what this installation offers, so clients can adapt (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sbx_api.deps import State
from sbx_api.info import service
from sbx_api.info.schemas import InfoOut
from sbx_api.responses import ok
from sbx_api.schemas import Envelope

router = APIRouter(tags=["info"])


@router.get("/info", response_model=Envelope[InfoOut])
async def get_info(request: Request, state: State) -> JSONResponse:
    """Version, container runtimes, optional features and limits of this installation."""
    info = await service.platform_info(state, request.app.version)
    return ok(info.dump())
