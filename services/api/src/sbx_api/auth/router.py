"""Routes of the auth domain: `POST /auth/signup`, `POST /auth/login`, `GET /auth/me`,
`POST /auth/password`, `POST /auth/logout`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sbx_api.auth import service
from sbx_api.auth.schemas import (
    AuthResult,
    ChangePasswordRequest,
    LoggedOut,
    LoginRequest,
    SignupRequest,
    UserOut,
)
from sbx_api.deps import CurrentUser, State
from sbx_api.responses import ok
from sbx_api.schemas import Envelope

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/signup", status_code=201, response_model=Envelope[AuthResult])
async def signup(body: SignupRequest, state: State) -> JSONResponse:
    """Create an account (email unique, case-insensitive) and return it with a token."""
    result = await service.signup(state, body.email, body.password)
    return ok(result.dump(), status_code=201)


@router.post("/login", response_model=Envelope[AuthResult])
async def login(body: LoginRequest, state: State) -> JSONResponse:
    """Exchange email and password for a token."""
    result = await service.login(state, body.email, body.password)
    return ok(result.dump())


@router.get("/me", response_model=Envelope[UserOut])
async def me(caller: CurrentUser, state: State) -> JSONResponse:
    """The authenticated user."""
    return ok((await service.me(state, caller.user_id)).dump())


@router.post("/password", response_model=Envelope[AuthResult])
async def change_password(body: ChangePasswordRequest, caller: CurrentUser, state: State) -> JSONResponse:
    """Change the password. Every JWT issued before is refused (401) from now on; the answer
    carries a new token. API keys keep working (revoke them with DELETE /api-keys/:id)."""
    result = await service.change_password(state, caller, body.current_password, body.new_password)
    return ok(result.dump())


@router.post("/logout", response_model=Envelope[LoggedOut])
async def logout(caller: CurrentUser, state: State) -> JSONResponse:
    """Revoke the JWT presented: it is refused (401) from now on."""
    await service.logout(state, caller)
    return ok(LoggedOut().dump())
