"""Per-customer state: the shared event-time windows, the policy's memory, and one slice per detector.

The core keeps what every detector shares (identity, times seen, counts, the activity and hour
rings, recent event ids, the next look, the policy ledger); each detector keeps its own part in
``slices`` (:class:`forethought.core.plugin.Slice`, by detector name), with its own codec and version.

The state serialises to a compact binary form (the changelog value, :mod:`forethought.core.state_codec`)
and back without loss; :meth:`CustomerState.from_bytes` also reads the JSON that older versions wrote:

>>> from forethought.core.config import EngineConfig
>>> state = CustomerState.new("c1", EngineConfig())
>>> state.remember("event-1")
False
>>> state.remember("event-1")
True
>>> CustomerState.from_bytes(state.to_bytes(), EngineConfig()) == state
True
>>> old = json.dumps(state.to_dict()).encode()  # what versions before the binary codec wrote
>>> CustomerState.from_bytes(old, EngineConfig()) == state
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
from dataclasses import dataclass, field, fields
from typing import Any

from forethought.core.applied import NOTHING, Applied
from forethought.core.baselines import EwStats
from forethought.core.ledger import PolicyLedger
from forethought.core.state_codec import (
    FIELDS,
    FIELDS_V1,
    HOUR_BUCKETS,
    MAGIC_V1,
    decode_fields,
    encode_fields,
)
from forethought.core.views import EngineView
from forethought.core.windows import BucketRing

STATE_VERSION = 3  # of the JSON dict (to_dict); the binary form has its own (state_codec.VERSION)
READABLE_VERSIONS = frozenset({2, 3})  # version 2 lacks the hour ring, sessions and the anomaly run
HOUR = 3600
ID_DIGEST_BYTES = 5
_KINDS = ("page_view", "click", "session_start", "session_end", "feature_used", "error", "usage")
_ZERO_DEFAULT = frozenset({"n", "late", "errn", "visits", "quiet", "am", "be", "mu"})
_EMPTY: dict[str, list[float]] = {"lg": [0.0, 0.0], "gaps": [0, 0.0, 0.0]}


@dataclass(slots=True)
class CustomerState:
    """Everything the engine remembers about one customer. Times are POSIX seconds."""

    customer_id: str
    activity: BucketRing
    slices: dict[str, Any] = field(default_factory=dict)  # each detector's part, by detector name (core.plugin)
    last_seen: float | None = None
    first_seen: float | None = None
    events: int = 0
    visits: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    hours: BucketRing = field(default_factory=lambda: BucketRing.empty(HOUR_BUCKETS))  # events per hour
    session_start: int | None = None  # (whole seconds) the current session began (a visit, or a session_start event)
    daily_at: float | None = None  # the next look (core.due)
    recent_ids: bytes = b""
    account_id: str | None = None
    late: int = 0
    error_total: int = 0
    created: float | None = None
    policy: PolicyLedger = field(default_factory=PolicyLedger)
    applied: Applied = NOTHING  # how far each input was applied to this state (core.applied: exactly-once effects)
    profile_at: float | None = None  # the updated_at of the newest profile record given to the detectors (core.engine)

    @classmethod
    def new(cls, customer_id: str, config: EngineView) -> CustomerState:
        """A customer never seen before."""
        return cls(customer_id=customer_id, activity=BucketRing.empty(config.ring_buckets),
                   slices=config.detectors.new_slices(config))

    def slice(self, name: str) -> Any:
        """Detector ``name``'s part of this state (KeyError when that detector does not run)."""
        return self.slices[name]

    def peek(self, name: str) -> Any:
        """Detector ``name``'s slice **to read only**: on a :meth:`draft` the run's copy when it made
        one, else the origin's own, not copied (reading a slice must not cost a copy of it).

        >>> from forethought.core.config import EngineConfig
        >>> state = CustomerState.new("c1", EngineConfig())
        >>> twin = state.draft()
        >>> twin.peek("silence") is state.slice("silence"), twin.slice("silence") is twin.peek("silence")
        (True, True)
        """
        slices = self.slices
        if type(slices) is _Slices:
            piece = dict.get(slices, name)
            return slices.origin[name] if piece is None else piece
        return slices[name]

    def find(self, name: str) -> Any:
        """Detector ``name``'s slice to read only, as :meth:`peek`; None when that detector does not run.

        >>> from forethought.core.config import EngineConfig
        >>> state = CustomerState.new("c1", EngineConfig())
        >>> state.find("silence") is state.peek("silence"), state.find("no such detector")
        (True, None)
        """
        try:
            return self.peek(name)
        except KeyError:
            return None

    def remember(self, event_id: str, keep: int = 32) -> bool:
        """Record ``event_id``; True when it was already among the last ``keep`` ids.

        Ids are kept as 5-byte BLAKE2b digests: a false "duplicate" needs a 40-bit collision
        with one of ``keep`` recent ids (about 3 in 1e11 per event at the default).
        """
        digest = hashlib.blake2b(event_id.encode(), digest_size=ID_DIGEST_BYTES).digest()
        ids = self.recent_ids
        at = ids.find(digest)
        while at >= 0:  # a match must start on a digest boundary
            if at % ID_DIGEST_BYTES == 0:
                return True
            at = ids.find(digest, at + 1)
        self.recent_ids = (ids + digest)[-ID_DIGEST_BYTES * keep :]
        return False

    def copy(self) -> CustomerState:
        """An independent copy: running the engine on it leaves this state as it was.

        >>> from forethought.core.config import EngineConfig
        >>> state = CustomerState.new("c1", EngineConfig())
        >>> twin = state.copy()
        >>> twin.remember("e1"), twin == state, state.recent_ids
        (False, False, b'')
        """
        twin = self.draft()
        twin.slices = {name: piece.copy() for name, piece in self.slices.items()}
        return twin

    def draft(self, tick: bool = False) -> CustomerState:
        """A copy to run the engine on, made cheaply: this state stays as it was, whatever the run does.

        The runtime takes one before each record, so a record the engine raises on leaves no trace
        (the draft is dropped). The shared windows, the counts and the policy ledger are copied at once;
        each detector's slice only when the run first reads it (most records touch a few), so a
        slice the run never reads is shared with this state. Call :meth:`finish` on a draft that is
        kept: it takes the untouched slices over and lets go of this state. ``tick=True``: a draft for a
        due tick, which shares the windows, the counts by type and the policy ledger with this state
        too: a tick only reads the windows (only an event moves them, in ``engine._fold``), and copies
        the ledger before it changes it (``engine._own_ledger``); tests/unit/test_due_times.py holds both.

        >>> from forethought.core.config import EngineConfig
        >>> state = CustomerState.new("c1", EngineConfig())
        >>> twin = state.draft()
        >>> twin.slice("silence") is state.slice("silence"), len(twin.slices)  # copied when first read
        (False, 1)
        >>> twin.finish(); twin == state, twin.slice("usage") is state.slice("usage")  # untouched: shared
        (True, True)
        """
        twin = CustomerState(*_ALL_FIELDS(self))  # immutable values (numbers, strings, bytes) are shared
        if not tick:
            twin.activity, twin.hours, twin.by_type = self.activity.copy(), self.hours.copy(), dict(self.by_type)
            twin.policy = self.policy.copy()
        twin.slices = _Slices(self.slices)
        return twin

    def finish(self) -> None:
        """Make a :meth:`draft` whole: slices it never read are taken over from the state it came from.
        A no-op on any other state."""
        slices = self.slices
        if type(slices) is _Slices:
            self.slices = slices.finish()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form that versions before the binary codec wrote (version 3: one flat set of
        fields, short keys, empty or default parts left out); :meth:`from_dict` reads it back. For
        people and for tests of reading old states: the changelog holds :meth:`to_bytes`. The applied
        offsets (``applied``), which those versions did not have, are left out."""
        v: Any = _Flat(self)  # every slice's fields beside the core's
        data = {
            "v": STATE_VERSION, "id": v.customer_id, "acct": v.account_id,
            "first": v.first_seen, "last": v.last_seen, "n": v.events,
            "late": v.late, "errn": v.error_total, "types": [v.by_type.get(k, 0) for k in _KINDS],
            "visits": v.visits, "gaps": v.gaps.to_list(), "lg": [v.long_gap, v.long_gap_at],
            "day": v.day, "wk": v.week, "dec": v.decline, "use": v.usage,
            "errb": v.error_baseline.to_list(), "act": v.activity.to_list(),
            "err": v.errors.to_list(), "burst": v.burst_bucket, "quiet": v.quiet_buckets,
            "due": v.deadline, "fired": v.silence_fired_for,
            "ids": base64.b64encode(v.recent_ids).decode(),
            "made": None if v.created == v.first_seen else v.created,
            "feat": {k: [_whole(t) for t in v] for k, v in v.features.items()},
            "codes": v.error_codes, "sev": v.error_severity, "daily": _whole(v.daily_at),
            "pol": None if v.policy.is_empty() else v.policy.to_dict(), "snap": v.snapshot,
            "hr": v.hours.to_list() if v.hours.head >= 0 else None, "ses": _whole(v.session_start),
            "am": v.active_minutes, "be": v.bucket_events, "mu": v.minute_usage, "odd": v.odd,
            "chn": None if (churn := [v.churn_repeats, v.churn_sampled, v.churn_deadline, v.churn_fired_for,
                                      v.churn_signup_day]) == [None, 0, None, None, None] else churn,
            "lh": base64.b64encode(v.local_hours).decode(),  # active hours of the day (send windows)
            "chl": None if (example := [v.example_day, v.example_days, v.back_repeats, v.back_hours,
                                        base64.b64encode(v.experience).decode(), v.paid, v.engaged, v.signup_day]) == [
                None, 0, None, None, "", None, 0, None] else example,
            "prof": v.profile_at,  # the newest profile record the detectors were given (core.engine)
        }
        return {k: v for k, v in data.items()
                if not (v is None or v == [] or v == {} or v == "" or (k in _ZERO_DEFAULT and v == 0)
                        or v == _EMPTY.get(k))}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: EngineView) -> CustomerState:
        """Inverse of :meth:`to_dict`."""
        if data.get("v") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported customer state version {data.get('v')!r}")
        get = data.get
        long_gap = get("lg", [0.0, 0.0])
        return compose(dict(
            customer_id=data["id"], account_id=get("acct"), first_seen=get("first"),
            last_seen=get("last"), events=get("n", 0), late=get("late", 0), error_total=get("errn", 0),
            by_type={k: n for k, n in zip(_KINDS, get("types", [])) if n}, visits=get("visits", 0),
            gaps=EwStats.from_list(get("gaps", [])), long_gap=long_gap[0], long_gap_at=long_gap[1],
            day=get("day", -1), week=list(get("wk", [0] * 7)), decline=list(get("dec", [])),
            usage={k: list(v) for k, v in get("use", {}).items()}, error_baseline=EwStats.from_list(get("errb", [])),
            activity=BucketRing.from_list(config.ring_buckets, get("act", [-1])),
            errors=BucketRing.from_list(config.ring_buckets, get("err", [-1])),
            burst_bucket=get("burst"), quiet_buckets=get("quiet", 0), deadline=get("due"),
            silence_fired_for=get("fired"), recent_ids=base64.b64decode(get("ids", "")),
            created=get("made", get("first")), features={k: list(v) for k, v in get("feat", {}).items()},
            error_codes=dict(get("codes", {})), error_severity=dict(get("sev", {})), daily_at=get("daily"),
            policy=PolicyLedger.from_dict(data["pol"]) if get("pol") else PolicyLedger(),
            snapshot=get("snap"), hours=BucketRing.from_list(HOUR_BUCKETS, get("hr", [-1])),
            session_start=get("ses"), active_minutes=get("am", 0), bucket_events=get("be", 0),
            minute_usage=get("mu", 0.0),
            odd=list(get("odd", [])), local_hours=base64.b64decode(get("lh", "")),
            **dict(zip(("churn_repeats", "churn_sampled", "churn_deadline", "churn_fired_for", "churn_signup_day"),
                       get("chn", []))),  # (4 long before the signup day)
            **_example(get("chl", [])), profile_at=get("prof"),
        ), config)

    def to_bytes(self) -> bytes:
        """The changelog value: the compact binary form (:func:`encode_state`)."""
        return encode_state(self)

    @classmethod
    def from_bytes(cls, raw: bytes, config: EngineView) -> CustomerState:
        """A state from its changelog value, binary or old JSON (:func:`decode_state`)."""
        return decode_state(raw, config)


class _Slices(dict[str, Any]):
    """The slices of a :meth:`CustomerState.draft`: empty at first, each detector's slice copied
    from the origin's the first time the run reads it (``__missing__``: later reads are plain dict
    lookups). Nothing iterates a draft's slices during a run; :meth:`finish` completes them."""

    __slots__ = ("origin",)

    def __init__(self, origin: dict[str, Any]) -> None:
        super().__init__()
        self.origin = origin

    def __missing__(self, name: str) -> Any:
        piece = self[name] = self.origin[name].copy()
        return piece

    def finish(self) -> dict[str, Any]:
        """A plain dict of every slice: those read (copies) and those untouched (the origin's own)."""
        whole = dict(self.origin)
        whole.update(self)
        return whole


def _example(kept: list[Any]) -> dict[str, Any]:
    """The learned churn detector's fields from the JSON form's ``chl`` list (4 long before its experience)."""
    found = dict(zip(("example_day", "example_days", "back_repeats", "back_hours", "experience", "paid", "engaged",
                      "signup_day"), kept))
    if "experience" in found:
        found["experience"] = base64.b64decode(found["experience"])
    return found


_FIELDS = tuple(f.name for f in fields(CustomerState))
_ALL_FIELDS = operator.attrgetter(*_FIELDS)  # every field's value, in __init__'s order, in one C call
if _FIELDS != tuple(f.name for f in FIELDS):  # a new field needs its line at the end of state_codec.FIELDS
    raise ImportError(f"state_codec.FIELDS does not list CustomerState's fields in order: {_FIELDS}")

_UNREADABLE_JSON = (KeyError, TypeError, AttributeError, IndexError, RecursionError, OverflowError)


def encode_state(state: CustomerState) -> bytes:
    """The compact binary form of ``state`` (see :mod:`forethought.core.state_codec`)."""
    return encode_fields(state)


def decode_state(raw: bytes, config: EngineView) -> CustomerState:
    """A state from :func:`encode_state`'s bytes or from the JSON dict (versions 2 and 3) that older
    versions wrote. Anything else, truncated or corrupted bytes included, raises ValueError.

    >>> from forethought.core.config import EngineConfig
    >>> decode_state(b"\\x82\\x92\\x00\\x00", EngineConfig())  # no customer id
    Traceback (most recent call last):
    ValueError: a required field is missing
    """
    try:
        if raw[:1] == b"{":
            return CustomerState.from_dict(json.loads(raw), config)
        if raw[:1] == MAGIC_V1:
            return compose(decode_fields(raw, config, FIELDS_V1, MAGIC_V1), config)
        return CustomerState(**decode_fields(raw, config))
    except ValueError:
        raise  # as it is: its message is what the dead letter and the log say
    except _UNREADABLE_JSON as error:
        raise ValueError(f"unreadable customer state: {type(error).__name__}: {error}") from error


def compose(flat: dict[str, Any], config: EngineView) -> CustomerState:
    """A state from the flat fields of a version written before detectors had slices (JSON versions
    2 and 3, binary version 1): the core's fields stay, each detector takes its own."""
    core = {name: flat[name] for name in _FIELDS if name in flat}
    core["slices"] = config.detectors.from_legacy(flat, config)
    return CustomerState(**core)


class _Flat:
    """A state's core fields and every slice's fields as attributes of one object (:meth:`to_dict`)."""

    def __init__(self, state: CustomerState) -> None:
        self.__dict__.update({name: getattr(state, name) for name in _FIELDS})
        for piece in state.slices.values():
            self.__dict__.update({f.name: getattr(piece, f.name) for f in piece.FIELDS})


def _whole(t: float | None) -> float | int | None:
    """Whole seconds as an int (``1790000088.0`` → ``1790000088``: two bytes less in JSON)."""
    return int(t) if t is not None and t % 1 == 0 else t
