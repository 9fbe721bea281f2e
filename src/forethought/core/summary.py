"""What idle eviction keeps of a customer: a summary of tens of bytes, so the whole base stays scored.

A customer idle past ``idle_ttl_seconds`` leaves the live states (their windows, baselines, policy
memory and pending snapshot go), but not the base: :func:`summarise` keeps their identity, first,
last and creation times, counts (events, visits, errors, events by type) and, per detector, the few
numbers its :meth:`~forethought.core.plugin.Detector.summarise` hook chooses, under its slice's key
(the silence detector keeps its model of the customer's gaps between visits). The summary is stored where the state was
(the same table and changelog, its own format byte), and:

- **is scored**: :meth:`Summary.revive` rebuilds a customer state from it (each detector puts its
  part back with :meth:`~forethought.core.plugin.Detector.revive`), which the ordinary
  :func:`~forethought.core.engine.explain` scores: a long silence against the customer's own gaps,
  so a long-silent customer reads as likely gone, with the reason (:func:`summary_view`);
- **keeps the history of a customer who comes back**: their next record runs on the revived state
  (:func:`forethought.core.engine.resume`), so first seen, counts and tenure carry on.

Layout: ``0x91 | MessagePack array [presence bits, anchor, each present field's value]``, the state
codec's table form (:mod:`forethought.core.state_codec`, the same append-only versioning rule),
anchored at ``last_seen``; each detector's part is a short list of numbers under its slice's key.
Decoding checks every field and raises ValueError on anything else.

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.state import CustomerState
>>> config = EngineConfig()
>>> state = CustomerState.new("c1", config)
>>> state.first_seen, state.last_seen, state.created, state.events, state.visits = 1.7e9, 1.71e9, 1.7e9, 40, 12
>>> summary = summarise(state, 1.73e9, config)
>>> raw = summary.to_bytes()
>>> raw[0] == MAGIC, len(raw) < 40, Summary.from_bytes(raw) == summary
(True, True, True)
>>> back = summary.revive(config)
>>> (back.customer_id, back.first_seen, back.last_seen, back.events, back.visits)
('c1', 1700000000.0, 1710000000.0, 40, 12)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]

from forethought.core.codec_kinds import INT, KIND_COUNTS, NUMS, STR, TIME, Kind, checked_map
from forethought.core.state import CustomerState
from forethought.core.state_codec import Field, anchor_of, decode_table, encode_table
from forethought.core.views import EngineView

__all__ = ["MAGIC", "VERSION", "Summary", "decode_stored", "summarise", "summary_view"]

VERSION = 1
MAGIC = 0x90 | VERSION
MAGIC_BYTE = bytes([MAGIC])


def _parts_back(v: Any, _anchor: int, _config: Any) -> dict[str, list[float | int]]:
    return {name: NUMS.back(part, 0, _config) for name, part in checked_map(v).items()}


PARTS = Kind(lambda v, _anchor: v, _parts_back)


def _required(_config: Any, _fields: dict[str, Any]) -> Any:
    raise ValueError("a stored summary has no customer id")


def _evicted_required(_config: Any, _fields: dict[str, Any]) -> Any:
    raise ValueError("a stored summary has no eviction time")


# APPEND ONLY (state_codec's versioning rule): a new field is a new line at the end.
FIELDS: tuple[Field, ...] = (
    Field("customer_id", STR, skip=lambda _v, _s: False, fill=_required),
    Field("evicted_at", TIME, skip=lambda _v, _s: False, fill=_evicted_required),
    Field("last_seen", TIME),
    Field("first_seen", TIME),
    Field("created", TIME, skip=lambda v, s: v is None or v == s.first_seen, fill=lambda _c, f: f.get("first_seen")),
    Field("events", INT, 0),
    Field("visits", INT, 0),
    Field("error_total", INT, 0),
    Field("by_type", KIND_COUNTS, {}),
    Field("account_id", STR),
    Field("parts", PARTS, {}),
    Field("late", INT, 0),
)


@dataclass(frozen=True, slots=True)
class Summary:
    """An idle customer as kept after eviction (times are POSIX seconds; ``parts``: each detector's
    numbers by its slice's key)."""

    customer_id: str
    evicted_at: float
    last_seen: float | None = None
    first_seen: float | None = None
    created: float | None = None
    events: int = 0
    visits: int = 0
    error_total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    account_id: str | None = None
    parts: dict[str, list[float | int]] = field(default_factory=dict)
    late: int = 0

    def to_bytes(self) -> bytes:
        """The stored form: :data:`MAGIC` then the MessagePack table (see the module docstring)."""
        anchor = anchor_of(self.last_seen if self.last_seen is not None else self.evicted_at)
        out = encode_table(self, FIELDS, anchor)
        out.insert(1, anchor)
        packed: bytes = msgpack.packb(out, use_bin_type=True, unicode_errors="surrogatepass")
        return MAGIC_BYTE + packed

    @classmethod
    def from_bytes(cls, raw: bytes, config: EngineView | None = None) -> Summary:
        """Inverse of :meth:`to_bytes`; ValueError (saying it is a summary) on anything else.

        >>> Summary.from_bytes(bytes([MAGIC]) + b"\\x92\\x00\\x00")
        Traceback (most recent call last):
        ValueError: unreadable customer summary: a stored summary has no customer id
        """
        if raw[:1] != MAGIC_BYTE:
            raise ValueError(f"not a version {VERSION} customer summary")
        try:
            items = msgpack.unpackb(memoryview(raw)[1:], raw=False, strict_map_key=True,
                                    unicode_errors="surrogatepass", ext_hook=_no_extensions)
            if type(items) is not list or len(items) < 2 or type(items[1]) is not int:
                raise ValueError("a stored summary is malformed")
            return cls(**decode_table([items[0], *items[2:]], items[1], config, FIELDS))  # type: ignore[arg-type]
        except ValueError as error:
            raise ValueError(f"unreadable customer summary: {error}") from error
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError, OverflowError) as error:
            raise ValueError(f"unreadable customer summary: {type(error).__name__}") from error

    def revive(self, config: EngineView) -> CustomerState:
        """A customer state as the summary remembers it: windows, baselines and policy memory start
        empty; each detector puts its part back (:meth:`~forethought.core.plugin.Detector.revive`).
        It is what the summary is scored on, and what a customer who comes back continues from."""
        state = CustomerState.new(self.customer_id, config)
        state.first_seen, state.last_seen, state.created = self.first_seen, self.last_seen, self.created
        state.events, state.visits, state.error_total = self.events, self.visits, self.error_total
        state.late = self.late
        state.by_type, state.account_id = dict(self.by_type), self.account_id
        for detector, settings in config.plan:
            part = self.parts.get(_key(detector))
            if part is not None:
                detector.revive(state, part, settings)
        return state


def summarise(state: CustomerState, evicted_at: float, config: EngineView) -> Summary:
    """What eviction keeps of ``state`` at ``evicted_at`` (each detector adds its part)."""
    parts = {}
    for detector, settings in config.plan:
        part = detector.summarise(state, settings)
        if part is not None:
            parts[_key(detector)] = part
    return Summary(state.customer_id, evicted_at, state.last_seen, state.first_seen, state.created, state.events,
                   state.visits, state.error_total, dict(state.by_type), state.account_id, parts, state.late)


def decode_stored(raw: bytes, config: EngineView) -> CustomerState | Summary:
    """A stored value of the customer table: a live state (any format it ever had) or a summary."""
    if raw[:1] == MAGIC_BYTE:
        return Summary.from_bytes(raw, config)
    return CustomerState.from_bytes(raw, config)


def summary_view(summary: Summary, now: float, config: EngineView) -> dict[str, Any]:
    """What is said of a summarised customer beside their scores: that they were evicted, when,
    after how long idle, and why they read as gone.

    >>> from forethought.core.config import EngineConfig
    >>> s = Summary("c1", evicted_at=200 * 86_400.0, last_seen=20 * 86_400.0, visits=3)
    >>> view = summary_view(s, 220 * 86_400.0, EngineConfig())
    >>> view["idle_days"], view["reason"]["signal"], view["reason"]["text"][:39]
    (200.0, 'idle_seconds', 'No activity for 200 days (idle past the')
    """
    since = summary.last_seen if summary.last_seen is not None else summary.created
    idle = None if since is None else max(0.0, now - since)
    ttl = config.windows.idle_ttl_seconds
    days = None if idle is None else round(idle / 86_400.0, 4)
    text = (f"No activity for {days:g} days (idle past the {ttl / 86_400.0:g}-day TTL, summarised at eviction;"
            f" {summary.visits} visits, {summary.events} events seen).") if days is not None else \
        "Never active; summarised at eviction."
    return {"summarised": True, "evicted_at": summary.evicted_at, "idle_days": days,
            "reason": {"signal": "idle_seconds", "observed": None if idle is None else round(idle, 3),
                       "baseline": ttl, "unit": "seconds", "text": text}}


def _key(detector: Any) -> str:
    """A detector's part is kept under its slice's short key (its name when it has no slice)."""
    return detector.State.KEY if detector.State is not None else detector.name  # type: ignore[no-any-return]


def _no_extensions(code: int, _data: bytes) -> Any:
    raise ValueError(f"a MessagePack extension type ({code}) in a summary")
