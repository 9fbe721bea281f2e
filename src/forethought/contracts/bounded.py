"""The size bound of dead letters, shared by the worker's and the senders' dead letters.

Sizes are UTF-8 bytes of the JSON that is published, never characters: a text of 5000 '€' is
5000 characters but 15000 bytes.

>>> utf8_prefix("€€€", 7)  # 3 bytes each: the third would be split, so it goes whole
'€€'
>>> clean_text("a\\ud800b", 10)  # a lone surrogate cannot be encoded: replaced
'a?b'
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

MIN_DEADLETTER_MAX_BYTES = 16 * 1024  # room for the fields, a bounded text and a useful prefix
DEFAULT_DEADLETTER_MAX_BYTES = 256 * 1024
KEY_PREFIX_BYTES = 1024  # of a truncated dead letter's key; the value's prefix gets the rest

Letter = TypeVar("Letter", bound=BaseModel)
_STR: TypeAdapter[str] = TypeAdapter(str)


def utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding is at most ``limit`` bytes, never
    splitting a character (a lone surrogate, which has no UTF-8, counts as ``?``)."""
    return text.encode("utf-8", "replace")[: max(0, limit)].decode("utf-8", "ignore")


def clean_text(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters, lone surrogates replaced so it can be published."""
    return text[:chars].encode("utf-8", "replace").decode("utf-8")


def json_size(letter: BaseModel) -> int:
    """Bytes of ``letter`` as published: its JSON encoded as UTF-8."""
    return len(letter.model_dump_json().encode())


def b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def bound_letter(letter: Letter, max_bytes: int, *, text_field: str, text_chars: int, value: bytes,
                 key: bytes | None = None, drop: Mapping[str, Any] | None = None) -> Letter:
    """``letter`` itself when its JSON is at most ``max_bytes`` UTF-8 bytes; else a copy holding a
    prefix of the original ``value`` (and ``key``) with their sizes and sha256, ``truncated`` set.

    ``letter`` has the fields ``value_b64``, ``truncated``, ``original_value_bytes`` and
    ``original_value_sha256`` (and the ``key`` ones when a key is given); ``text_field`` names its
    free text (at most ``text_chars`` characters), which says how much was cut; ``drop`` lists
    fields to reset in the truncated copy (a parsed copy of the original, say).
    Raises ``ValueError`` when even the bare fields do not fit (``max_bytes`` below the minimum).
    """
    if max_bytes < MIN_DEADLETTER_MAX_BYTES:
        raise ValueError(f"max_bytes must be at least {MIN_DEADLETTER_MAX_BYTES}, got {max_bytes}")
    if json_size(letter) <= max_bytes:
        return letter
    note = f"; dead letter truncated to {max_bytes} bytes: value {len(value)} bytes"
    sums: dict[str, Any] = {"truncated": True, "original_value_bytes": len(value),
                            "original_value_sha256": hashlib.sha256(value).hexdigest(), "value_b64": ""}
    if key is not None:
        note += f", key {len(key)} bytes"
        sums |= {"original_key_bytes": len(key), "original_key_sha256": hashlib.sha256(key).hexdigest(),
                 "key_b64": ""}
    text = _cut_text(str(getattr(letter, text_field))[: max(0, text_chars - len(note))], note, max_bytes // 4)
    bare = letter.model_copy(update={**(drop or {}), **sums, text_field: text})
    room = max_bytes - json_size(bare)  # base64 characters (one byte each in JSON) left for both prefixes
    if room < 0:
        raise ValueError(f"a dead letter's own fields take {max_bytes - room} bytes, over the {max_bytes} allowed")
    update: dict[str, Any] = {}
    if key is not None:
        update["key_b64"] = b64(key[: min(KEY_PREFIX_BYTES, room // 8 // 4 * 3)])
        room -= len(update["key_b64"])
    update["value_b64"] = b64(value[: room // 4 * 3])
    return bare.model_copy(update=update)


def _cut_text(head: str, note: str, budget: int) -> str:
    """``head + note`` with ``head`` cut (by UTF-8 bytes) until its JSON is at most ``budget`` bytes.

    A character's JSON (escapes included) is never shorter than its UTF-8, so cutting the excess
    in UTF-8 bytes off ``head`` removes at least that much JSON.
    """
    while (excess := len(_STR.dump_json(head + note)) - budget) > 0 and head:
        head = utf8_prefix(head, len(head.encode("utf-8", "replace")) - excess)
    return head + note
