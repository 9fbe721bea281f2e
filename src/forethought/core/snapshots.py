"""Snapshot features of the learned drop-off model: a small fixed vector, stored in 20 characters.

Once a day (at the customer's daily check) the engine takes a snapshot of the customer's
features; the snapshot waits in the customer's state until its label is known (see
:mod:`forethought.core.detectors.learned_dropoff`). To keep the state under 1 KiB, each feature is clipped to a
fixed range and quantised to one byte; the model is trained *and* scored on the quantised values,
so what it learns from is exactly what it is later asked about.

>>> facts = {"scores": {"dropoff": 0.97}, "features": {"silence_seconds": 6 * 86_400.0,
...     "typical_gap_seconds": 86_400.0, "events": 300, "visits": 40, "events_last_7_days": 2,
...     "usual_events_per_7_days": 35.0, "days_since_first_seen": 60.0, "error_total": 3,
...     "features_used": 4}}
>>> x = vector(facts)
>>> round(x["silence_ratio"], 2), round(x["dropoff"], 2), x["usual_known"]
(1.95, 0.97, 1.0)
>>> text = encode(1_790_000_000, codes(facts))
>>> len(text), decode(text) == (1_790_000_000.0, x)
(20, True)
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TIME = struct.Struct(">I")  # whole POSIX seconds (daily checks fall on whole seconds) until 2106
_TEXT = 20  # characters of base64: 4 bytes of time + 11 feature bytes


@dataclass(frozen=True, slots=True)
class Feature:
    """One model input: clipped to ``[lo, hi]`` and quantised to 256 levels."""

    name: str
    lo: float
    hi: float
    help: str

    def code(self, value: float) -> int:
        """The byte that stands for ``value`` (NaN counts as ``lo``)."""
        share = (min(max(value, self.lo), self.hi) - self.lo) / (self.hi - self.lo) if value == value else 0.0
        return round(share * 255)

    def value(self, code: int) -> float:
        """The value a byte stands for."""
        return self.lo + code / 255 * (self.hi - self.lo)


FEATURES: tuple[Feature, ...] = (
    Feature("silence_ratio", 0.0, 6.0, "ln(1 + silence / the customer's typical gap between visits)"),
    Feature("dropoff", 0.0, 1.0, "the silence detector's drop-off score"),
    Feature("log_typical_gap", 4.0, 16.0, "ln(typical gap between visits in seconds): 1 min ... 100 days"),
    Feature("log_events", 0.0, 14.0, "ln(1 + events seen)"),
    Feature("log_visits", 0.0, 10.0, "ln(1 + visits seen)"),
    Feature("log_events_7d", 0.0, 10.0, "ln(1 + events in the last 7 days)"),
    Feature("week_vs_usual", 0.0, 2.5, "ln(1 + events in the last 7 days / usual), ln 2 while unknown"),
    Feature("usual_known", 0.0, 1.0, "1 once the customer's usual weekly level is known"),
    Feature("log_tenure_days", 0.0, 6.0, "ln(1 + days since first seen)"),
    Feature("error_rate", 0.0, 1.0, "errors / events"),
    Feature("log_features_used", 0.0, 3.0, "ln(1 + distinct features used)"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
_CLIPS = tuple((f.name, f.lo, f.hi, f.hi - f.lo) for f in FEATURES)  # Feature.code, unrolled (once a look)
_VALUES = tuple(tuple(f.value(code) for code in range(256)) for f in FEATURES)  # Feature.value by code


def raw(facts: Mapping[str, Any]) -> dict[str, float]:
    """The unclipped feature values from :func:`forethought.core.engine.facts` output."""
    return dict(zip(NAMES, _raw_values(facts)))


def _raw_values(facts: Mapping[str, Any]) -> list[float]:
    """:func:`raw`'s values in :data:`FEATURES` order (once a look: no dict in between)."""
    f, scores = facts["features"], facts["scores"]
    events, gap = f.get("events") or 0, max(f.get("typical_gap_seconds") or 1.0, 1.0)
    week, usual = f.get("events_last_7_days") or 0, f.get("usual_events_per_7_days")
    return [
        math.log1p((f.get("silence_seconds") or 0.0) / gap),
        scores.get("dropoff") or 0.0,
        math.log(gap),
        math.log1p(events),
        math.log1p(f.get("visits") or 0),
        math.log1p(week),
        math.log1p(week / usual) if usual else math.log(2.0),
        1.0 if usual else 0.0,
        math.log1p(max(f.get("days_since_first_seen") or 0.0, 0.0)),
        (f.get("error_total") or 0) / events if events else 0.0,
        math.log1p(f.get("features_used") or 0),
    ]


def codes(facts: Mapping[str, Any]) -> bytes:
    """One byte per feature, in :data:`FEATURES` order."""
    return bytes([round((min(max(v, lo), hi) - lo) / span * 255) if v == v else 0
                  for v, (_, lo, hi, span) in zip(_raw_values(facts), _CLIPS)])  # a list: once a look, 11 items


def from_codes(data: bytes) -> dict[str, float]:
    """The model input that ``data`` (from :func:`codes`) stands for."""
    if len(data) != len(FEATURES):
        raise ValueError(f"{len(data)} feature codes, expected {len(FEATURES)}")
    return {name: values[code] for name, values, code in zip(NAMES, _VALUES, data)}


def vector(facts: Mapping[str, Any]) -> dict[str, float]:
    """The quantised model input as of ``facts`` (what a snapshot would store)."""
    return from_codes(codes(facts))


def encode(at: float, data: bytes) -> str:
    """A snapshot taken at ``at`` of features ``data`` (from :func:`codes`) as 20 base64
    characters: 4 bytes of time, one per feature."""
    return base64.b64encode(_TIME.pack(int(at)) + data).decode()


def taken_at(text: str) -> float:
    """When the snapshot ``text`` (from :func:`encode`) was taken; ValueError when malformed.

    >>> taken_at(encode(1_790_000_000, bytes(len(FEATURES))))
    1790000000.0
    """
    data = base64.b64decode(text[:8], validate=True)  # the time's 4 bytes, without the features
    if len(text) != _TEXT or len(data) < _TIME.size:
        raise ValueError(f"snapshot of {len(text)} characters, expected {_TEXT}")
    return float(_TIME.unpack_from(data)[0])


def decode(text: str) -> tuple[float, dict[str, float]]:
    """Inverse of :func:`encode`: ``(taken_at, features)``; ValueError when malformed."""
    data = base64.b64decode(text, validate=True)
    if len(data) != _TIME.size + len(FEATURES):
        raise ValueError(f"snapshot of {len(data)} bytes, expected {_TIME.size + len(FEATURES)}")
    return float(_TIME.unpack_from(data)[0]), from_codes(data[_TIME.size:])
