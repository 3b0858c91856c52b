"""Request and response bodies of signup, login and `me`."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, Field

from sbx_api.schemas import ApiModel, RequestModel, Timestamp

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z][A-Za-z0-9-]{0,62}$"
)
MAX_EMAIL_LENGTH = 254


def normalize_email(value: str) -> str:
    """Emails are compared and stored lower-cased: one account per address, whatever its case."""
    value = value.strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value):
        raise ValueError("Enter a valid email address.")
    return value


Email = Annotated[str, AfterValidator(normalize_email)]


class SignupRequest(RequestModel):
    email: Email = Field(examples=["demo@example.com"])
    password: str = Field(min_length=8, max_length=128, examples=["password123"])


class LoginRequest(RequestModel):
    # Not validated beyond its type: a malformed email or an impossible password is simply
    # a wrong credential (401), so login never says more than "no".
    email: str = Field(max_length=1024, examples=["demo@example.com"])
    password: str = Field(max_length=1024, examples=["password123"])


class UserOut(ApiModel):
    id: uuid.UUID
    email: str
    created_at: Timestamp


class AuthResult(ApiModel):
    user: UserOut
    token: str = Field(description="A JWT (HS256); send it as `Authorization: Bearer <token>`.")


class ChangePasswordRequest(RequestModel):
    # The current password is only checked, never validated beyond its type (a wrong one is 401).
    current_password: str = Field(max_length=1024, examples=["password123"])
    new_password: str = Field(min_length=8, max_length=128, examples=["a new passphrase"])


class LoggedOut(ApiModel):
    logged_out: bool = Field(default=True, description="The token presented is refused (401) from now on.")
