"""Webhook signatures: what a receiver does with the secret, the timestamp header and the raw body."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from forethought.senders.signing import (
    IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, headers, sign, verify,
)

SECRET = b"whsec-test"
BODY = b'{"trigger_id":"t-1","customer_id":"c-1"}'
NOW = 1_763_800_000


def test_a_receiver_recomputes_the_signature_from_the_headers_alone() -> None:
    sent = headers(SECRET, "t-1", BODY, now=NOW)
    expected = hmac.new(SECRET, f"{sent[TIMESTAMP_HEADER]}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sent[SIGNATURE_HEADER] == f"sha256={expected}"
    assert sent[IDEMPOTENCY_HEADER] == "t-1"
    assert verify(SECRET, sent[TIMESTAMP_HEADER], BODY, sent[SIGNATURE_HEADER], now=NOW + 1)


def test_a_wrong_secret_a_changed_body_or_a_changed_timestamp_fail() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify(b"other-secret", str(NOW), BODY, signature, now=NOW)
    assert not verify(SECRET, str(NOW), BODY.replace(b"c-1", b"c-2"), signature, now=NOW)
    assert not verify(SECRET, str(NOW + 1), BODY, signature, now=NOW)


def test_stale_or_garbled_timestamps_are_rejected() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), BODY, signature, tolerance=300, now=NOW + 300)
    assert not verify(SECRET, str(NOW), BODY, signature, tolerance=300, now=NOW + 301)
    assert not verify(SECRET, "not-a-number", BODY, signature, now=NOW)


@given(st.binary(max_size=512), st.binary(min_size=1, max_size=64), st.integers(0, 2**40))
def test_every_signed_body_verifies_with_its_own_secret_and_timestamp(body: bytes, secret: bytes, stamp: int) -> None:
    assert verify(secret, str(stamp), body, sign(secret, stamp, body), now=stamp)
