"""Per-customer state: event-time windows, baselines, deadlines and episode bookkeeping.

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

from forethought.core.baselines import EwStats
from forethought.core.config import EngineConfig
from forethought.core.ledger import PolicyLedger
from forethought.core.state_codec import FIELDS, HOUR_BUCKETS, decode_fields, encode_fields
from forethought.core.windows import BucketRing

STATE_VERSION = 3  # of the JSON dict (to_dict); the binary form has its own (state_codec.VERSION)
READABLE_VERSIONS = frozenset({2, 3})  # version 2 lacks the hour ring, sessions and the anomaly run
HOUR = 3600
MAX_ERROR_CODES = 8
ID_DIGEST_BYTES = 5
_KINDS = ("page_view", "click", "session_start", "session_end", "feature_used", "error", "usage")
_ZERO_DEFAULT = frozenset({"n", "late", "errn", "visits", "quiet", "am", "be", "mu"})
_EMPTY: dict[str, list[float]] = {"lg": [0.0, 0.0], "gaps": [0, 0.0, 0.0]}


@dataclass(slots=True)
class CustomerState:
    """Everything the engine remembers about one customer. Times are POSIX seconds."""

    customer_id: str
    activity: BucketRing
    errors: BucketRing
    account_id: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    events: int = 0
    late: int = 0
    error_total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    visits: int = 0
    gaps: EwStats = field(default_factory=EwStats)
    long_gap: float = 0.0
    long_gap_at: float = 0.0
    day: int = -1
    week: list[int] = field(default_factory=lambda: [0] * 7)
    decline: list[float] = field(default_factory=list)
    usage: dict[str, list[float]] = field(default_factory=dict)
    error_baseline: EwStats = field(default_factory=EwStats)
    burst_bucket: int | None = None
    quiet_buckets: int = 0
    deadline: float | None = None
    silence_fired_for: float | None = None
    recent_ids: bytes = b""
    created: float | None = None
    features: dict[str, list[float]] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)
    error_severity: dict[str, int] = field(default_factory=dict)
    daily_at: float | None = None
    policy: PolicyLedger = field(default_factory=PolicyLedger)
    snapshot: str | None = None  # the learned drop-off model's pending snapshot (core.snapshots)
    hours: BucketRing = field(default_factory=lambda: BucketRing.empty(HOUR_BUCKETS))  # events per hour
    session_start: int | None = None  # (whole seconds) the current session began (a visit, or a session_start event)
    active_minutes: int = 0  # closed buckets with activity, and the events in them: the customer's
    bucket_events: int = 0  # events per active bucket (counted since version 3: an upgraded state starts at 0)
    minute_usage: float = 0.0  # largest usage shift (in spreads) reported in the newest activity bucket
    odd: list[int] = field(default_factory=list)  # [first, last] bucket of the current anomalous run

    @classmethod
    def new(cls, customer_id: str, config: EngineConfig) -> CustomerState:
        """A customer never seen before."""
        return cls(
            customer_id=customer_id,
            activity=BucketRing.empty(config.ring_buckets),
            errors=BucketRing.empty(config.ring_buckets),
        )

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

    def count_error(self, code: str, severity: str) -> None:
        """Count an error by severity, and by code for the first few codes seen."""
        self.error_severity[severity] = self.error_severity.get(severity, 0) + 1
        if code in self.error_codes or len(self.error_codes) < MAX_ERROR_CODES:
            self.error_codes[code] = self.error_codes.get(code, 0) + 1

    def copy(self) -> CustomerState:
        """An independent copy: running the engine on it leaves this state as it was.

        The worker keeps one before each record so that a record the engine raises on leaves the
        customer's state as it was before it (several times cheaper than a serialised snapshot).

        >>> state = CustomerState.new("c1", EngineConfig())
        >>> twin = state.copy()
        >>> twin.remember("e1"), twin == state, state.recent_ids
        (False, False, b'')
        """
        twin = CustomerState(*_ALL_FIELDS(self))  # immutable values (numbers, strings, bytes, EwStats) are shared
        twin.activity, twin.errors, twin.hours = self.activity.copy(), self.errors.copy(), self.hours.copy()
        twin.by_type, twin.week, twin.decline = dict(self.by_type), list(self.week), list(self.decline)
        twin.usage = {k: list(v) for k, v in self.usage.items()}
        twin.features = {k: list(v) for k, v in self.features.items()}
        twin.error_codes, twin.error_severity = dict(self.error_codes), dict(self.error_severity)
        twin.policy, twin.odd = self.policy.copy(), list(self.odd)
        return twin

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form: short keys, and empty or default parts left out."""
        data = {
            "v": STATE_VERSION, "id": self.customer_id, "acct": self.account_id,
            "first": self.first_seen, "last": self.last_seen, "n": self.events,
            "late": self.late, "errn": self.error_total, "types": [self.by_type.get(k, 0) for k in _KINDS],
            "visits": self.visits, "gaps": self.gaps.to_list(), "lg": [self.long_gap, self.long_gap_at],
            "day": self.day, "wk": self.week, "dec": self.decline, "use": self.usage,
            "errb": self.error_baseline.to_list(), "act": self.activity.to_list(),
            "err": self.errors.to_list(), "burst": self.burst_bucket, "quiet": self.quiet_buckets,
            "due": self.deadline, "fired": self.silence_fired_for,
            "ids": base64.b64encode(self.recent_ids).decode(),
            "made": None if self.created == self.first_seen else self.created,
            "feat": {k: [_whole(t) for t in v] for k, v in self.features.items()},
            "codes": self.error_codes, "sev": self.error_severity, "daily": _whole(self.daily_at),
            "pol": None if self.policy.is_empty() else self.policy.to_dict(), "snap": self.snapshot,
            "hr": self.hours.to_list() if self.hours.head >= 0 else None, "ses": _whole(self.session_start),
            "am": self.active_minutes, "be": self.bucket_events, "mu": self.minute_usage, "odd": self.odd,
        }
        return {k: v for k, v in data.items()
                if not (v is None or v == [] or v == {} or v == "" or (k in _ZERO_DEFAULT and v == 0)
                        or v == _EMPTY.get(k))}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: EngineConfig) -> CustomerState:
        """Inverse of :meth:`to_dict`."""
        if data.get("v") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported customer state version {data.get('v')!r}")
        get = data.get
        long_gap = get("lg", [0.0, 0.0])
        return cls(
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
            odd=list(get("odd", [])),
        )

    def to_bytes(self) -> bytes:
        """The changelog value: the compact binary form (:func:`encode_state`)."""
        return encode_state(self)

    @classmethod
    def from_bytes(cls, raw: bytes, config: EngineConfig) -> CustomerState:
        """A state from its changelog value, binary or old JSON (:func:`decode_state`)."""
        return decode_state(raw, config)


_FIELDS = tuple(f.name for f in fields(CustomerState))
_ALL_FIELDS = operator.attrgetter(*_FIELDS)  # every field's value, in __init__'s order, in one C call
if _FIELDS != tuple(f.name for f in FIELDS):  # a new field needs its line at the end of state_codec.FIELDS
    raise ImportError(f"state_codec.FIELDS does not list CustomerState's fields in order: {_FIELDS}")

_UNREADABLE_JSON = (KeyError, TypeError, AttributeError, IndexError, RecursionError, OverflowError)


def encode_state(state: CustomerState) -> bytes:
    """The compact binary form of ``state`` (see :mod:`forethought.core.state_codec`)."""
    return encode_fields(state)


def decode_state(raw: bytes, config: EngineConfig) -> CustomerState:
    """A state from :func:`encode_state`'s bytes or from the JSON dict (versions 2 and 3) that older
    versions wrote. Anything else, truncated or corrupted bytes included, raises ValueError.

    >>> decode_state(b"\\x81\\x92\\x00\\x00", EngineConfig())  # no customer id
    Traceback (most recent call last):
    ValueError: a required field is missing
    """
    try:
        if raw[:1] == b"{":
            return CustomerState.from_dict(json.loads(raw), config)
        return CustomerState(**decode_fields(raw, config))
    except ValueError:
        raise  # as it is: its message is what the dead letter and the log say
    except _UNREADABLE_JSON as error:
        raise ValueError(f"unreadable customer state: {type(error).__name__}: {error}") from error


def _whole(t: float | None) -> float | int | None:
    """Whole seconds as an int (``1790000088.0`` → ``1790000088``: two bytes less in JSON)."""
    return int(t) if t is not None and t % 1 == 0 else t
