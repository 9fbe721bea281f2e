"""``scores.churn_learned``: the churn score corrected by a model learned online from the stream.

The BTYD score ``scores.churn`` (:mod:`forethought.core.detectors.churn`) is corrected in log-odds by
the partition's :class:`~forethought.core.churn_learned.Correction`, trained on examples whose horizon
is relative to each customer's own cadence and labelled only once the answer is known (the model, the
features and the label rules: :mod:`forethought.core.churn_learned`; docs/churn.md). While the
partition's correction is cold, ``scores.churn_learned`` equals ``scores.churn``.

This slice (key ``c``) is the pending example: its start and horizon in days and, once the customer
came back within it, their repeat count and last activity as of the start (a few bytes). The answer
is noted in :meth:`ChurnLearned.before_event` (before the event is folded in: the churn detector's
repeat count is taken back to what it was at the start) and learned at the first look at or after
the horizon, whatever it is (:mod:`forethought.core.churn_learned` says why).

>>> from forethought.core.config import EngineConfig
>>> from forethought.core.models import PartitionModels
>>> from forethought.core.state import CustomerState
>>> config, models = EngineConfig(), PartitionModels()
>>> s = config.section(NAME)
>>> state = CustomerState.new("c1", config)
>>> state.first_seen = state.last_seen = 1_790_000_000.0
>>> churn.of(state).churn_repeats = 0
>>> m = Moment(at=1_790_050_000.0, config=config, models=models)
>>> start(state, m, s), of(state).example_days  # a one-time customer, gap ~11 days: 4 gaps
(True, 45)
>>> learn(state, 1_790_050_000.0 + 44 * DAY, m) is None  # not known yet
True
>>> label = learn(state, 1_790_050_000.0 + 45 * DAY, m)
>>> label["label"], models.churn_learned.labels, of(state).example_days
(1, 1, 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.core import btyd, churn_context
from forethought.core.churn_learned import HELP, Correction, features, horizon_days
from forethought.core.codec_kinds import BYTES, INT
from forethought.core.detectors import churn, decline, lifecycle
from forethought.core.due import slot_after, slot_at_or_after
from forethought.core.plugin import NEVER, Detector, Look, Moment, Slice, check_positive
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "churn_learned"
DAY = 86_400.0
CLOSED = -1  # ``example_days`` of a customer too long silent for an example to be answered before eviction


@dataclass(frozen=True, slots=True)
class ChurnLearnedSettings:
    """The learned correction of the churn score: example horizons relative to the customer's cadence."""

    churn_learn_correction: bool = True  # false: scores.churn_learned is scores.churn, nothing is learned
    churn_label_gap_multiple: float = 4.0  # an example's horizon: this many expected gaps between active days
    churn_label_min_days: float = 1.0  # ... in whole days within these bounds
    churn_label_max_days: float = 90.0
    churn_correction_min_labels: int = 200  # labels (a tenth of each kind) before the correction is applied
    churn_correction_rate: float = 0.003  # its SGD learning rate (chosen on the dev split)
    churn_learn_experience: bool = False  # true: also the customer's experience (core.churn_context; docs/churn.md)

    def __post_init__(self) -> None:
        check_positive(self, {"churn_learn_correction", "churn_learn_experience"})
        if self.churn_label_min_days > self.churn_label_max_days:
            raise ValueError("churn_label_min_days must be <= churn_label_max_days")


@dataclass(slots=True)
class ChurnLearnedState(Slice):
    """The pending example's start as the day after the customer's first activity whose daily slot
    it is (looks are slots: one a day), and its horizon in whole days (0: none pending; ``example_day``
    is then the day the next may start, None: at the next look; :data:`CLOSED`: none until the
    customer's next activity, as none could be answered before their eviction); once the customer came back within
    it, their repeat count and silence in whole hours as of the start (None: not back, or none
    pending). Each is a small integer: 1-3 bytes. ``experience`` is the customer's experience at the
    pending example's start (:mod:`forethought.core.churn_context`: 8 bytes; empty: none kept);
    ``paid`` whether the latest profile named a paid plan (None: no plan known) and ``signup_day`` its
    signup date (days since 1970-01-01); ``engaged`` how many messages the customer engaged with
    (opened, clicked, converted)."""

    KEY: ClassVar[str] = "c"
    FIELDS: ClassVar[tuple[Field, ...]] = (  # append only
        Field("example_day", INT), Field("example_days", INT, 0), Field("back_repeats", INT), Field("back_hours", INT),
        Field("experience", BYTES, b""), Field("paid", INT), Field("engaged", INT, 0), Field("signup_day", INT),
    )

    example_day: int | None = None
    example_days: int = 0
    back_repeats: int | None = None
    back_hours: int | None = None
    experience: bytes = b""
    paid: int | None = None
    engaged: int = 0
    signup_day: int | None = None

    def copy(self) -> ChurnLearnedState:
        return ChurnLearnedState(self.example_day, self.example_days, self.back_repeats, self.back_hours,
                                 self.experience, self.paid, self.engaged, self.signup_day)


def of(state: CustomerState) -> ChurnLearnedState:
    """The customer's slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


class ChurnLearned(Detector):
    """Offers ``scores.churn_learned``; learns the partition's correction from examples whose horizon passed."""

    name: ClassVar[str] = NAME
    Settings = ChurnLearnedSettings
    State = ChurnLearnedState
    scores = ("churn_learned",)
    needs = ("churn",)
    look_cost = 1

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: ChurnLearnedSettings,
                     m: Moment) -> None:
        sl = of(state)
        if sl.example_days == CLOSED:  # no example while they were silent: this activity reopens them
            sl.example_day, sl.example_days = None, 0
            return
        if not sl.example_days or sl.back_repeats is not None or state.first_seen is None or state.last_seen is None:
            return
        begun = example_at(state)
        if begun is not None and begun < ts < begun + sl.example_days * DAY:
            sl.back_repeats = max(0, churn.repeats(state) - int(_new_period(state, ts, m)))  # as of the start
            sl.back_hours = max(0, round((begun - state.last_seen) / 3600))

    def on_engaged(self, state: CustomerState, s: ChurnLearnedSettings, m: Moment) -> None:
        of(state).engaged += 1

    def on_profile(self, state: CustomerState, s: ChurnLearnedSettings, m: Moment) -> None:
        _note_plan(state, m)

    def look_due(self, state: CustomerState, soon: float, s: ChurnLearnedSettings, m: Moment) -> float:
        if m.models is None or not s.churn_learn_correction or state.last_seen is None or state.first_seen is None:
            return NEVER
        sl = state.peek(NAME)
        if sl.example_days == CLOSED:
            return NEVER
        at = example_at(state)
        if at is None:
            return max(soon, slot_after(state.customer_id, state.last_seen))
        return max(soon, slot_at_or_after(state.customer_id, at + sl.example_days * DAY))

    def on_look(self, state: CustomerState, s: ChurnLearnedSettings, m: Moment, look: Look) -> None:
        """An example's horizon passed: it is learned; then the next example starts."""
        if m.models is None or not s.churn_learn_correction or state.last_seen is None or state.first_seen is None:
            return
        sl = state.peek(NAME)  # read only: a look that learns nothing copies nothing
        if sl.example_days == CLOSED or (sl.example_days and learn(state, m.at, m) is None):
            return
        at = example_at(state)
        if m.at > state.last_seen and (at is None or m.at >= at):
            start(state, m, s)

    def facts(self, state: CustomerState, now: float, s: ChurnLearnedSettings, m: Moment, found: dict[str, Any],
              brief: bool) -> None:
        if brief:
            return
        found["scores"]["churn_learned"] = round(score(state, now, m)[0], 6)

    def explain(self, state: CustomerState, now: float, s: ChurnLearnedSettings, m: Moment) -> dict[str, Any]:
        p, p_btyd, x = score(state, now, m)
        model = getattr(m.models, "churn_learned", None)
        terms = model.terms(x) if model is not None and model.warm and s.churn_learn_correction else {}
        sl = of(state)
        return {"churn_learned": {
            "score": round(p, 6), "btyd": round(p_btyd, 6),
            "correction": round(sum(terms.values()), 6) if terms else 0.0,
            "model": None if model is None else {"labels": model.labels, "silent": model.positives, "warm": model.warm},
            "pending_example": {"started_at": example_at(state), "horizon_days": sl.example_days,
                                "came_back": sl.back_repeats is not None} if sl.example_days > 0 else None,
            "reasons": reasons(terms, p, p_btyd),
        }}


def example_at(state: CustomerState) -> float | None:
    """The pending (or next) example's start: the customer's daily slot on its day."""
    day, first = state.peek(NAME).example_day, state.first_seen
    return None if day is None or first is None else slot_at_or_after(state.customer_id, first + day * DAY)


def _note_plan(state: CustomerState, m: Moment) -> None:
    """Keep whether the customer's new profile names a paid plan, and their signup date (a score
    without the profile at hand reads them from the slice)."""
    paid, signed, sl = churn_context.is_paid(m.profile), churn_context.signup_day(m.profile), of(state)
    if paid is not None:
        sl.paid = int(paid)
    if signed is not None:
        sl.signup_day = signed


def experience(state: CustomerState, now: float, s: ChurnLearnedSettings) -> bytes:
    """The customer's experience as of ``now`` (:mod:`forethought.core.churn_context`), or none when
    ``churn_learn_experience`` is off. Other detectors' parts are read when they run."""
    if not s.churn_learn_experience:
        return b""
    sl, weekly, used = state.peek(NAME), state.find(decline.NAME), state.find(lifecycle.NAME)
    last = now if state.last_seen is None else min(now, state.last_seen)  # the trend while active, not the silence
    return churn_context.codes(churn_context.Experience(
        week=decline.events_last_7_days(weekly, last) if weekly is not None else 0,
        usual=decline.usual_weekly(state, last) if weekly is not None else None,
        errors=state.error_total, events=state.events, visits=state.visits,
        active_days=1 + (churn.repeats(state) or 0), features=len(used.features) if used is not None else 0,
        tenure_days=max(now / DAY - (sl.signup_day if sl.signup_day is not None else math.inf),
                        (now - state.first_seen) / DAY if state.first_seen is not None else 0.0),
        paid=bool(sl.paid), sent=len(state.policy.sent), engaged=sl.engaged))


def _new_period(state: CustomerState, ts: float, m: Moment) -> bool:
    """Whether the event at ``ts`` opened a new active period (the churn detector counted it already)."""
    period = m.config.section(churn.NAME).churn_period_seconds
    last = state.last_seen
    return last is not None and math.floor(ts / period) > math.floor(last / period)


def start(state: CustomerState, m: Moment, s: ChurnLearnedSettings) -> bool:
    """Start an example at ``m.at``: its horizon is ``churn_label_gap_multiple`` expected gaps.

    No example starts whose answer could not be learned before the customer is evicted for idling
    (``idle_ttl_seconds`` after their last activity, with a day to spare for the look): it would be
    lost unlearned when they stay silent, and learned when they come back, so the model would learn
    that long silences end in returns (measured on CDNOW with the default 180-day TTL: AUC 0.32).
    The detector then closes until the customer's next activity (no looks meanwhile)."""
    if state.first_seen is None or state.last_seen is None:
        return False
    params = churn.prior(m.config.section(churn.NAME), m.models)
    x, _, T = churn.summary(state, m.at)
    days = horizon_days(x, T, params.r, params.alpha, s.churn_label_gap_multiple,
                        s.churn_label_min_days, s.churn_label_max_days)
    sl = of(state)
    sl.back_repeats = sl.back_hours = None
    if m.at + (days + 1) * DAY > state.last_seen + m.config.windows.idle_ttl_seconds:
        sl.example_day, sl.example_days, sl.experience = None, CLOSED, b""
        return False
    sl.example_day, sl.example_days = int((m.at - state.first_seen) // DAY), days
    sl.experience = experience(state, m.at, s)
    return True


def learn(state: CustomerState, now: float, m: Moment) -> dict[str, Any] | None:
    """At a look at ``now``: the pending example, once its horizon has passed (None before: its answer
    is not known yet, right-censored), is learned with the features of its start; the next example
    may start at once (the next start is the end of this one)."""
    sl = state.peek(NAME)
    first = state.first_seen
    begun = example_at(state)
    if sl.example_days <= 0 or begun is None or first is None or sl.example_day is None or state.last_seen is None:
        return None
    days, lived = sl.example_days, sl.experience
    if now < begun + days * DAY:
        return None
    sl = of(state)  # learned: the slice changes
    silent = sl.back_repeats is None or sl.back_hours is None
    x = churn.repeats(state) if silent or sl.back_repeats is None else sl.back_repeats
    last = state.last_seen if silent or sl.back_hours is None else begun - 3600.0 * sl.back_hours
    sl.example_day, sl.example_days = sl.example_day + days, 0
    sl.back_repeats = sl.back_hours = None
    sl.experience = b""
    T = max(0.0, begun - first) / DAY
    tx = min(T, max(0.0, last - first) / DAY)
    params = churn.prior(m.config.section(churn.NAME), m.models)
    p_btyd = btyd.p_silent(params, x, tx, T, float(days))
    f = features(x, tx, T, p_btyd, lived)
    predicted = correction(m.models, m.config.section(NAME)).learn(f, p_btyd, silent)
    m.models.unsaved += 1
    label = {"model": "churn", "label": int(silent), "taken_at": begun, "horizon_days": days,
             "partition": m.models.partition, "labels_seen": m.models.labels, "predicted": predicted,
             "prior": round(p_btyd, 6), "features": f}
    m.observe("label", label)
    return label


def correction(models: Any, s: ChurnLearnedSettings) -> Correction:
    """The partition's correction, with this section's settings."""
    model: Correction = models.churn_learned
    model.min_labels, model.lr = s.churn_correction_min_labels, s.churn_correction_rate
    return model


def score(state: CustomerState, now: float, m: Moment) -> tuple[float, float, dict[str, float]]:
    """``(scores.churn_learned, scores.churn, the features)`` as of ``now``."""
    cs, s = m.config.section(churn.NAME), m.config.section(NAME)
    params, horizon = churn.prior(cs, m.models), churn.horizon_days(cs, m)
    x, tx, T = churn.summary(state, now)
    p_btyd = btyd.p_silent(params, x, tx, T, horizon)
    f = features(x, tx, T, p_btyd, experience(state, now, s))
    if m.models is None or not s.churn_learn_correction:
        return p_btyd, p_btyd, f
    return correction(m.models, s).blend(p_btyd, f), p_btyd, f


def reasons(terms: dict[str, float], p: float, p_btyd: float) -> list[str]:
    """The correction's largest parts, in words (none while cold)."""
    if not terms:
        return [f"The learned correction is not applied yet (too few labels): the churn score {p_btyd:.0%} stands."]
    parts = sorted(((v, k) for k, v in terms.items() if k), key=lambda t: -abs(t[0]))[:3]
    said = ", ".join(f"{HELP[k]} {'+' if v >= 0 else '−'}{abs(v):.2f}" for v, k in parts)
    return [f"Learned from this partition's resolved examples: {p_btyd:.0%} → {p:.0%} (log-odds: {said})."]
