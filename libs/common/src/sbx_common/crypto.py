"""Cryptography: secrets at rest (AES-256-GCM), passwords (bcrypt), API keys, JWT."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets as _secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from passlib.hash import bcrypt_sha256

from sbx_common.timeutil import utcnow

# --- secrets at rest ---------------------------------------------------------------------------

NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """The ciphertext, its binding or the key does not match. Carries no secret material."""


def parse_master_key(encoded: str) -> bytes:
    """Decode a base64 master key; it must be exactly 32 bytes (AES-256)."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the secrets master key is not valid base64") from exc
    if len(key) != 32:
        raise ValueError("the secrets master key must decode to 32 bytes")
    return key


def key_id(key: bytes) -> str:
    """A short, stable, non-secret identifier of a master key, stored beside each ciphertext."""
    return hashlib.sha256(b"sbx-key-id:" + key).hexdigest()[:16]


def secret_binding(environment_id: uuid.UUID | str, secret_key: str) -> bytes:
    """Associated data: a ciphertext only decrypts for the environment and key it was made for."""
    return f"sbx-secret:v1:{environment_id}:{secret_key}".encode()


@dataclass(frozen=True)
class SealedSecret:
    key_id: str
    nonce: bytes
    ciphertext: bytes


class SecretBox:
    """Encrypts with the current master key; decrypts with any known key, chosen by key id."""

    def __init__(self, current: bytes, older: list[bytes] | None = None) -> None:
        self._current_id = key_id(current)
        self._keys = {key_id(k): AESGCM(k) for k in [*(older or []), current]}

    @classmethod
    def from_settings(cls, master_key: str, old_keys: str = "") -> SecretBox:
        older = [parse_master_key(k.strip()) for k in old_keys.split(",") if k.strip()]
        return cls(parse_master_key(master_key), older)

    @property
    def current_key_id(self) -> str:
        return self._current_id

    def seal(self, plaintext: str, associated_data: bytes) -> SealedSecret:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._keys[self._current_id].encrypt(nonce, plaintext.encode(), associated_data)
        return SealedSecret(self._current_id, nonce, ciphertext)

    def open(self, sealed: SealedSecret, associated_data: bytes) -> str:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise DecryptionFailed("no master key with this key id is configured")
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, associated_data).decode()
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise DecryptionFailed("the secret could not be decrypted") from exc


# --- passwords ---------------------------------------------------------------------------------

# bcrypt cost 12. bcrypt_sha256 pre-hashes, so passwords longer than bcrypt's 72-byte limit are
# accepted in full instead of raising (bcrypt 5) or being silently truncated.
_password_hasher = bcrypt_sha256.using(rounds=12)


def hash_password(password: str) -> str:
    return str(_password_hasher.hash(password))


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bool(_password_hasher.verify(password, password_hash))
    except (ValueError, TypeError):
        return False


# A valid hash to verify against when the email is unknown, so that login takes the same time
# whether or not the account exists.
DUMMY_PASSWORD_HASH = "$bcrypt-sha256$v=2,t=2b,r=12$RGx7KkpR5s22Lb1vnE9h1O$Ej5ik7b/MQyn3pJvv/kFtpeiBOsn.zC"  # noqa: S105 (a hash of a throwaway value)


# --- API keys ----------------------------------------------------------------------------------

API_KEY_PREFIX = "sk_"
API_KEY_LOOKUP_CHARS = 12  # characters after "sk_" stored in clear to find the row


@dataclass(frozen=True)
class NewApiKey:
    key: str
    prefix: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    """`sk_` + 32 random bytes (base64url). Only the prefix and a SHA-256 hash are stored."""
    key = API_KEY_PREFIX + _secrets.token_urlsafe(32)
    return NewApiKey(key=key, prefix=api_key_prefix(key), key_hash=hash_api_key(key))


_API_KEY_SHAPE = re.compile(r"sk_[A-Za-z0-9_-]{43}")


def is_well_formed_api_key(key: str) -> bool:
    """Whether `key` has the shape `generate_api_key` makes (checked before any lookup)."""
    return _API_KEY_SHAPE.fullmatch(key) is not None


def api_key_prefix(key: str) -> str:
    return key[: len(API_KEY_PREFIX) + API_KEY_LOOKUP_CHARS]


def hash_api_key(key: str) -> str:
    # The key has 256 bits of entropy: a fast hash is safe here (no brute force is possible).
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), key_hash)


# --- JWT ---------------------------------------------------------------------------------------

JWT_ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is malformed, expired, or not signed by us."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified JWT says: whose it is, its id (for logout), when it expires, and the
    user's token version it was issued under (a password change bumps it)."""

    user_id: uuid.UUID
    jti: str
    expires_at: datetime
    version: int


def issue_token(user_id: uuid.UUID, secret: str, ttl: timedelta, version: int = 0) -> str:
    now = utcnow()
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + ttl,
        "jti": _secrets.token_hex(16),
        "ver": version,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_claims(token: str, secret: str) -> TokenClaims:
    try:
        # The algorithm is pinned: tokens with "alg: none" or another algorithm are rejected.
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
        version = claims.get("ver", 0)
        jti = claims.get("jti", "")
        if not isinstance(version, int) or not isinstance(jti, str) or len(jti) > 64:
            raise InvalidToken("malformed claims")
        return TokenClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            jti=jti,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
            version=version,
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidToken(str(exc)) from exc


def decode_token(token: str, secret: str) -> uuid.UUID:
    return decode_claims(token, secret).user_id
