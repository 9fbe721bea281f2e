"""Partition-model checkpoints as data: parameters in JSON, never code.

A checkpoint is read back from a Kafka changelog, so anyone who can write to that topic can put
bytes in front of the worker. Nothing here deserialises code: the models' *parameters* (the
scaler's counts, means and variances, the logistic regression's weights, the behaviour trees'
window masses, the population sums) are written as JSON and poured into freshly built models.
The worst a forged record can do is poison scores, and a deployment that sets a signing key
closes that too: every checkpoint then carries an HMAC-SHA256 tag over all its bytes, checked
before anything else in it is used, and a checkpoint without a valid tag is refused.

Layout (format 3)::

    b"FTPM" | format (1 byte) | header length (4 bytes, big-endian) | header JSON | payload JSON
    [| HMAC-SHA256 tag, 32 bytes, when the header says "mac": "hmac-sha256"]

>>> header = {"partition": 1, "labels": 0}
>>> raw = seal(header, {"x": [1, 2]}, key=b"k" * 32)
>>> open_checkpoint(raw, key=b"k" * 32)
({'partition': 1, 'labels': 0, 'sha256': '...', 'mac': 'hmac-sha256'}, {'x': [1, 2]})
>>> open_checkpoint(raw, key=b"another key, 32 bytes long......")
Traceback (most recent call last):
...
forethought.core.checkpoint.CheckpointError: unsigned or forged model checkpoint: its signature does not match ...
>>> open_checkpoint(seal(header, {}), key=b"k" * 32)
Traceback (most recent call last):
...
forethought.core.checkpoint.CheckpointError: unsigned or forged model checkpoint: its signature does not match ...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from typing import Any

MAGIC = b"FTPM"
FORMAT = 3
PICKLED_FORMATS = (1, 2)  # written by earlier versions as pickles: never loaded (a forged one runs code)
MAC = "hmac-sha256"
TAG_BYTES = 32
MAX_BYTES = 64 * 1024 * 1024  # far above any real checkpoint; a larger record is refused unread
HEAD = struct.Struct(">4sBI")  # magic, format, header length
LARGEST = 2.0**63  # no number in a checkpoint is this large (nor infinite, nor NaN: abs(nan) < x is False)
INDEX = re.compile(r"-?[0-9]{1,12}")  # a window index as a JSON key


class CheckpointError(ValueError):
    """A checkpoint this code cannot use: corrupt, forged, unsigned, or of an incompatible version."""


def seal(header: dict[str, Any], payload: Any, key: bytes | None = None) -> bytes:
    """The checkpoint bytes of ``header`` and ``payload`` (signed when ``key`` is given).

    The payload's sha256 goes into the header (it catches corruption); the HMAC tag, when there
    is a key, covers every byte before it (it catches forgery).
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    fields = {**header, "sha256": hashlib.sha256(body).hexdigest()}
    if key is not None:
        fields["mac"] = MAC
    encoded = json.dumps(fields, separators=(",", ":")).encode()
    raw = HEAD.pack(MAGIC, FORMAT, len(encoded)) + encoded + body
    return raw + _tag(key, raw) if key is not None else raw


def open_checkpoint(raw: bytes, key: bytes | None = None) -> tuple[dict[str, Any], Any]:
    """``(header, payload)`` of a checkpoint, after every check that needs no model code.

    With ``key``, the tag is checked over the raw bytes before any of them is parsed: an unsigned
    or forged checkpoint is refused unread. Without a key, a signed checkpoint is read (its digest
    still checked).
    """
    _check_head(raw)
    if key is not None and (len(raw) < HEAD.size + TAG_BYTES
                            or not hmac.compare_digest(raw[-TAG_BYTES:], _tag(key, raw[:-TAG_BYTES]))):
        raise CheckpointError("unsigned or forged model checkpoint: its signature does not match this deployment's key")
    header, rest = _split(raw)
    if header.get("mac") == MAC:
        if len(rest) < TAG_BYTES:
            raise CheckpointError("corrupt model checkpoint: truncated signature")
        rest = rest[:-TAG_BYTES]
    if hashlib.sha256(rest).hexdigest() != header.get("sha256"):
        raise CheckpointError("corrupt model checkpoint: payload does not match its digest")
    return header, _json(rest, "payload")


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: a forger's deeply nested brackets
        raise CheckpointError(f"corrupt model checkpoint: unreadable {what}") from None


def _tag(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()


def _check_head(raw: bytes) -> None:
    if len(raw) < HEAD.size or raw[:4] != MAGIC:
        raise CheckpointError("corrupt model checkpoint: not a Forethought model checkpoint")
    if len(raw) > MAX_BYTES:
        raise CheckpointError(f"corrupt model checkpoint: {len(raw)} bytes (limit {MAX_BYTES})")
    version = raw[4]
    if version in PICKLED_FORMATS:
        raise CheckpointError(f"incompatible model checkpoint: format {version} is a pickle, which this worker"
                              f" never loads (it reads format {FORMAT})")
    if version != FORMAT:
        raise CheckpointError(f"incompatible model checkpoint: format {version}, this worker reads format {FORMAT}")


def _split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    _, _, length = HEAD.unpack_from(raw)
    if len(raw) < HEAD.size + length:
        raise CheckpointError("corrupt model checkpoint: truncated header")
    header = _json(raw[HEAD.size:HEAD.size + length], "header")
    if not isinstance(header, dict):
        raise CheckpointError("corrupt model checkpoint: unreadable header")
    return header, raw[HEAD.size + length:]


def floats(value: Any, what: str) -> dict[str, float]:
    """``value`` as a ``{name: number}`` map, or :class:`CheckpointError` naming ``what``.

    >>> floats({"a": 1, "b": 0.5}, "weights")
    {'a': 1.0, 'b': 0.5}
    >>> floats({"a": "1"}, "weights")
    Traceback (most recent call last):
    ...
    forethought.core.checkpoint.CheckpointError: corrupt model checkpoint: weights is not a map of numbers
    """
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < LARGEST
            for k, v in value.items()):
        raise CheckpointError(f"corrupt model checkpoint: {what} is not a map of numbers")
    return {k: float(v) for k, v in value.items()}


def integers(value: Any, what: str, length: int | None = None) -> list[int]:
    """``value`` as a list of integers (of ``length`` when given), or :class:`CheckpointError`.

    >>> integers([1, 2, 3], "sums", length=3)
    [1, 2, 3]
    >>> integers([1, 2.5], "sums")
    Traceback (most recent call last):
    ...
    forethought.core.checkpoint.CheckpointError: corrupt model checkpoint: sums is not a list of integers
    """
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and abs(v) < LARGEST for v in value):
        raise CheckpointError(f"corrupt model checkpoint: {what} is not a list of integers")
    if length is not None and len(value) != length:
        raise CheckpointError(f"corrupt model checkpoint: {what} holds {len(value)} values, expected {length}")
    return value


def integer(value: Any, what: str, lowest: int = 0) -> int:
    """``value`` as an integer of at least ``lowest``, or :class:`CheckpointError`.

    >>> integer(3, "count")
    3
    >>> integer(-1, "count")
    Traceback (most recent call last):
    ...
    forethought.core.checkpoint.CheckpointError: corrupt model checkpoint: count is not an integer >= 0
    """
    if not isinstance(value, int) or isinstance(value, bool) or not lowest <= value < LARGEST:
        raise CheckpointError(f"corrupt model checkpoint: {what} is not an integer >= {lowest}")
    return value


def index(key: object, what: str) -> int:
    """A window index written as a JSON key, or :class:`CheckpointError`.

    >>> index("-12", "window")
    -12
    >>> index("²", "window")
    Traceback (most recent call last):
    ...
    forethought.core.checkpoint.CheckpointError: corrupt model checkpoint: a window index is not an integer
    """
    if not isinstance(key, str) or not INDEX.fullmatch(key):
        raise CheckpointError(f"corrupt model checkpoint: a {what} index is not an integer")
    return int(key)
