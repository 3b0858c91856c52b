"""Checking a webhook delivery on the receiving side: `verify_webhook`.

A delivery is a POST of an event object with `Sbx-Webhook-Id`, `Sbx-Event-Id`, `Sbx-Timestamp`
and `Sbx-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">` keyed with the webhook's
secret. Deliveries are at least once: deduplicate on `Sbx-Event-Id` (the event's `id`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from sandbox_platform.models import Event

#: Largest gap, in seconds, between a delivery's timestamp and the receiver's clock by default.
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The delivery is not signed with the secret, its signature is malformed, or it is too old."""


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    raise WebhookVerificationError(f"The {name} header is missing.")


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> Event:
    """The delivered event, once its signature matches `secret` and its timestamp is within
    `tolerance_seconds` of now; `WebhookVerificationError` otherwise. `body` is the raw request
    body, exactly as received."""
    timestamp = _header(headers, "Sbx-Timestamp")
    signature = _header(headers, "Sbx-Signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("The Sbx-Timestamp header is not a number.") from None
    if abs(time.time() - sent_at) > tolerance_seconds:
        raise WebhookVerificationError("The delivery's timestamp is outside the tolerance.")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    offered = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise WebhookVerificationError("The signature does not match the secret.")
    return Event.model_validate_json(body)
