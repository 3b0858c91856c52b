"""Log redaction (sbx_common.logging): every credential shape is masked in free text, and text
with none of them passes unchanged."""

from __future__ import annotations

import pytest
from sbx_common.logging import REDACTED, redact, redact_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXZhbHVl"
KEY = "sk_live_0123456789abcdefXYZ"
PREVIEW = "v1." + "a" * 44 + "." + "b" * 44


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("authorization: BEARER opaque-token-value", "opaque-token-value"),
        (f"token was {JWT} here", JWT),
        (f"key {KEY} used", KEY),
        ("postgresql://sandbox:s3cret-pw@db:5432/sandbox", "s3cret-pw"),
        ("GET /sandboxes/x/logs/stream?token=abc.def.ghi&from=1", "abc.def.ghi"),
        ("cookie sbx_preview=tok-value; path=/", "tok-value"),
        (f"link /p/{PREVIEW}/", PREVIEW),
    ],
)
def test_every_credential_shape_is_masked(text: str, secret: str) -> None:
    masked = redact_text(text)
    assert secret not in masked
    assert REDACTED in masked


@pytest.mark.parametrize(
    "text",
    ["request", "GET", "/sandboxes/{sandbox_id}/files/content", "3f2b8c1e-0000-4000-8000-000000000001"],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


def test_structures_lose_credential_keys_and_inline_secrets() -> None:
    out = redact({"password": "hunter22", "note": f"Bearer {JWT}", "items": [KEY]})
    assert out == {"password": REDACTED, "note": f"Bearer {REDACTED}", "items": [REDACTED]}
