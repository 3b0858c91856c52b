"""Preview tokens: a sandbox, one of its ports, its owner and an expiry, signed by the API.

A token is `v1.<payload>.<mac>` (base64url, no padding): the payload packs the sandbox id, the
owner id, the port and the expiry (epoch seconds); the MAC is HMAC-SHA256 over `v1.<payload>`
with the preview key. The key is `SBX_PREVIEW_SECRET` when set, else derived from
`SBX_JWT_SECRET` under a label of its own, so a preview token is never a JWT (nor the other way
round) and opens nothing but that sandbox's port. It carries no user credential: a destroyed
sandbox, another port or a past expiry refuses it (checked on every request by `access`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION = "v1"
_LAYOUT = struct.Struct(">16s16sHQ")  # sandbox id, owner id, port, expiry (epoch seconds)
_KEY_LABEL = b"sbx-preview-token-v1"
MAX_TOKEN_LENGTH = 256


class BadToken(Exception):
    """Malformed, tampered with or signed by another key."""


@dataclass(frozen=True)
class PreviewToken:
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    port: int
    expires_at: int  # epoch seconds

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


def preview_key(preview_secret: str, jwt_secret: str) -> bytes:
    """The HMAC key: the dedicated secret, else one derived from the JWT secret (domain-separated)."""
    if preview_secret:
        return hashlib.sha256(_KEY_LABEL + b"\x00" + preview_secret.encode()).digest()
    return hmac.new(jwt_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes of a canonical base64url text, else ValueError. Python's decoder skips
    characters outside the alphabet and ignores a last character's unused bits, so several texts
    decode alike: a token is accepted only as it was issued."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not a canonical base64url text")
    return raw


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()


def sign(token: PreviewToken, key: bytes) -> str:
    payload = _b64(_LAYOUT.pack(token.sandbox_id.bytes, token.owner_id.bytes, token.port, token.expires_at))
    signed = f"{VERSION}.{payload}"
    return f"{signed}.{_b64(_mac(key, signed))}"


def verify(text: str, key: bytes) -> PreviewToken:
    """The token's claims, or BadToken; the expiry is the caller's to check."""
    if len(text) > MAX_TOKEN_LENGTH or text.count(".") != 2:
        raise BadToken
    version, payload, mac = text.split(".")
    if version != VERSION:
        raise BadToken
    try:
        given = _unb64(mac)
        raw = _unb64(payload)
    except (binascii.Error, ValueError):
        raise BadToken from None
    if not hmac.compare_digest(given, _mac(key, f"{version}.{payload}")) or len(raw) != _LAYOUT.size:
        raise BadToken
    sandbox, owner, port, expires_at = _LAYOUT.unpack(raw)
    return PreviewToken(uuid.UUID(bytes=sandbox), uuid.UUID(bytes=owner), port, expires_at)
