"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``, and their verification by a receiver.

Headers sent with every webhook POST::

    X-Forethought-Signature: sha256=<hex>
    X-Forethought-Timestamp: <unix seconds>
    Idempotency-Key: <trigger_id>

A receiver needs only this module (standard library) to check them:

>>> body = b'{"trigger_id": "t-1"}'
>>> signature = sign(b"s3cret", 1_763_800_000, body)
>>> signature[:7]
'sha256='
>>> verify(b"s3cret", "1763800000", body, signature, now=1_763_800_010)
True
>>> verify(b"wrong", "1763800000", body, signature, now=1_763_800_010)
False
>>> verify(b"s3cret", "1763800000", body, signature, now=1_763_800_000 + 3600)  # replayed later
False
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Forethought-Signature"
TIMESTAMP_HEADER = "X-Forethought-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of b"<timestamp>." + body>``."""
    digest = hmac.new(secret, str(int(timestamp)).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str,
           tolerance: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """True when ``signature`` matches and ``timestamp`` is within ``tolerance`` seconds of ``now``.

    Compare in constant time; reject stale timestamps so a captured request cannot be replayed.
    """
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def headers(secret: bytes, trigger_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of one webhook request (a fresh timestamp per attempt)."""
    stamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, stamp, body),
        TIMESTAMP_HEADER: str(stamp),
        IDEMPOTENCY_HEADER: trigger_id,
    }
