"""Active hours: when in the day each customer is usually active, for send windows.

No signal of its own: the slice holds the customer's active hours by local hour of the day (24
four-bit counts in 12 bytes, :mod:`forethought.core.sendtime`), and the partition's models hold the
population's. The policy reads both when a playbook with a ``send_window`` decides
(:func:`forethought.core.policy.decide`). An event is counted only when it is the customer's first
in a new clock hour, so almost every event costs one comparison here.

>>> from datetime import datetime, timezone
>>> from forethought.contracts.events import PageView
>>> from forethought.core.config import EngineConfig
>>> from forethought.core.engine import process
>>> state, nine = None, datetime(2026, 11, 22, 9, tzinfo=timezone.utc).timestamp()
>>> for minutes in (0, 10, 50, 70):       # 09:00, 09:10, 09:50 and 10:10 UTC: two active hours
...     at = datetime.fromtimestamp(nine + 60 * minutes, timezone.utc)
...     state = process(state, PageView(event_id=f"e{minutes}", customer_id="c1", occurred_at=at),
...                     EngineConfig()).state
>>> hours(of(state).local_hours)[8:12]
[0, 1, 1, 0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from forethought.core.codec_kinds import BYTES
from forethought.core.plugin import Detector, Moment, Slice, check_positive
from forethought.core.sendtime import HOUR, counted, hours, local_hour
from forethought.core.state_codec import Field

if TYPE_CHECKING:
    from forethought.contracts.events import InboundEvent
    from forethought.core.state import CustomerState

NAME = "active_hours"


@dataclass(frozen=True, slots=True)
class ActiveHoursSettings:
    """``active_hours_learn``: learn each customer's and the population's active hours (default). Off,
    states carry no active hours (12 bytes less for an active customer, about 19 with the slice's own
    bytes) and a send window finds no profile: its triggers go at once, as without a window."""

    active_hours_learn: bool = True

    def __post_init__(self) -> None:
        check_positive(self, {"active_hours_learn"})


@dataclass(slots=True)
class ActiveHoursState(Slice):
    """The customer's active hours by local hour of the day (:func:`forethought.core.sendtime.counted`)."""

    KEY: ClassVar[str] = "h"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("local_hours", BYTES, b""),)  # append only

    local_hours: bytes = b""  # (not "hours": the core state has an hour ring by that name)

    def copy(self) -> ActiveHoursState:
        return ActiveHoursState(self.local_hours)


def of(state: CustomerState) -> ActiveHoursState:
    """The customer's active-hours slice."""
    return state.slices[NAME]  # type: ignore[no-any-return]


def seen(state: CustomerState) -> bytes:
    """The customer's counts, read only (no draft copy); b"" when this detector does not run."""
    kept = state.find(NAME)
    return b"" if kept is None else kept.local_hours


class ActiveHours(Detector):
    """Counts each customer's active hours in their local time, and the partition's."""

    name: ClassVar[str] = NAME
    Settings = ActiveHoursSettings
    State = ActiveHoursState

    def before_event(self, state: CustomerState, event: InboundEvent, ts: float, s: ActiveHoursSettings,
                     m: Moment) -> None:
        last = state.last_seen  # (the shared windows move to ts after this hook)
        if last is not None and ts // HOUR <= last // HOUR or not s.active_hours_learn:
            return  # this hour was counted already: the common case
        profile = m.profile
        hour = local_hour(ts, None if profile is None else profile.timezone)
        sl = of(state)
        sl.local_hours = counted(sl.local_hours, hour)
        if m.models is not None:
            m.models.learn_hour(hour)

    def explain(self, state: CustomerState, now: float, s: Any, m: Moment) -> dict[str, Any]:
        own = seen(state)
        return {"active_hours": hours(own)} if own else {}
