"""The playbook file format (``streams/playbooks.yaml``): what fires, for whom, how and when.

This module only checks shape; the core compiles conditions and checks names
(:mod:`forethought.core.policy.rules`).

>>> book = PlaybookSpec(name="error_burst", on=["error_burst"], channels=["in_app"], priority=70,
...                     cooldown="1h")
>>> book.cooldown_seconds, book.quiet_hours, book.mode
(3600.0, 'defer', 'live')
>>> PlaybookSpec(name="x", on=["silence"], channels=["email"], priority=1, cooldown="soon")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for PlaybookSpec
cooldown
  Value error, expected a duration such as 90s, 10m, 36h or 7d, got 'soon' ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from forethought.contracts.events import Name
from forethought.contracts.records import Channel, QuietWindow

# The built-in detectors' signals; a detector added to the engine's registry brings its own (the
# engine checks every ``on:`` against the registry when it compiles the playbooks).
SIGNALS = ("silence", "decline", "error_burst", "usage_anomaly", "behaviour_anomaly", "feature_first_use", "daily")
Signal = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=list(SIGNALS))]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
PLAYBOOK_NAME = r"^[a-z][a-z0-9_]{0,63}$"
SEND_WINDOW_MIN, SEND_WINDOW_MAX = 3600.0, 7 * 86_400.0  # a send window's bounds (1h .. 7d)


def seconds(text: str) -> float:
    """A duration such as ``90s``, ``10m``, ``36h``, ``7d`` or ``2w`` in seconds.

    >>> seconds("36h")
    129600.0
    """
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"expected a duration such as 90s, 10m, 36h or 7d, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted.

    >>> repeated(["a", "b", "a", "c", "b"])
    ['a', 'b']
    """
    seen: set[str] = set()
    twice: set[str] = set()
    for name in names:
        (twice if name in seen else seen).add(name)
    return sorted(twice)


def _duration(text: str) -> str:
    seconds(text)
    return text


Duration = Annotated[str, AfterValidator(_duration)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CapSpec(_Spec):
    """At most ``max`` triggers in any rolling ``per`` window (``channel: any`` counts all channels)."""

    channel: Channel | Literal["any"] = "any"
    max: int = Field(ge=1, le=1000)
    per: Duration

    @property
    def window_seconds(self) -> float:
        return seconds(self.per)


# --- variants chosen by a bandit (issue #16 point 2; docs/playbooks.md "Variants and the bandit") ---
MAX_VARIANTS = 8
Reward = Literal["opened", "clicked", "converted", "came_back"]  # outcome statuses, and the customer's return


def _default_rewards() -> list[Reward]:
    return ["clicked", "converted"]


class VariantSpec(_Spec):
    """One variant of a playbook's message: a ``template`` a sender renders, and/or a ``channel``
    tried before the playbook's own (which stay the fallbacks, in their order)."""

    name: str = Field(pattern=PLAYBOOK_NAME)
    template: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="A sender's template name.")
    channel: Channel | None = Field(None, description="Replaces the playbook's first-choice channel.")


class BanditSpec(_Spec):
    """How a playbook's variants are chosen and what counts as a success."""

    policy: Literal["thompson", "ucb"] = "thompson"
    reward: list[Reward] = Field(
        default_factory=_default_rewards, min_length=1,
        description="Outcome statuses that count as a success; came_back: active again within the window.")
    reward_window: Duration = Field("1d", description="A pull with no success by then counts as a failure.")

    @property
    def window_seconds(self) -> float:
        return seconds(self.reward_window)


class PlaybookSpec(_Spec):
    """One playbook: a condition over one or more signals, and how to act on it."""

    name: str = Field(pattern=PLAYBOOK_NAME)
    description: str = ""
    on: list[Signal] = Field(min_length=1, description="Signals that make the engine evaluate this playbook.")
    when: str = Field("true", max_length=1000, description="A condition in the expression language.")
    channels: list[Channel] = Field(min_length=1, description="In order of preference.")
    priority: int = Field(ge=0, le=100)
    cooldown: Duration = "0s"
    caps: list[CapSpec] = Field(default_factory=list, description="Caps on this playbook alone, per customer.")
    quiet_hours: Literal["defer", "drop", "ignore"] = "defer"
    holdout: float = Field(0.0, ge=0.0, le=1.0)
    mode: Literal["live", "shadow"] = "live"
    episode: str | None = Field(None, max_length=500, description="Expression naming the episode.")
    context: dict[Name, str] = Field(
        default_factory=dict, description="Sender context: name (1 to 128 characters, as a trigger's) → expression.")
    ttl: Duration = "1d"
    # -- send time (issue #16 point 3): its own block ------------------------------------------------
    send_window: Duration | None = Field(None, description=(
        "Send within this window at the customer's most likely active hour (e.g. 24h; 1h to 7d);"
        " absent: send at once."))

    @field_validator("send_window")
    @classmethod
    def _send_window_bounds(cls, value: str | None) -> str | None:
        if value is not None and not SEND_WINDOW_MIN <= seconds(value) <= SEND_WINDOW_MAX:
            raise ValueError(f"send_window must be between 1h and 7d, got {value!r}")
        return value

    @property
    def send_window_seconds(self) -> float | None:
        return None if self.send_window is None else seconds(self.send_window)
    # -- end of send time ----------------------------------------------------------------------------
    variants: list[VariantSpec] = Field(default_factory=list, max_length=MAX_VARIANTS, description=(
        "Message variants a bandit chooses between (none: the playbook as written)."))
    bandit: BanditSpec | None = Field(None, description="How variants are chosen (default: Thompson sampling).")

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[VariantSpec]) -> list[VariantSpec]:
        if twice := repeated(v.name for v in value):
            raise ValueError(f"variant names must be unique; repeated: {', '.join(twice)}")
        if len(value) == 1:
            raise ValueError("list at least two variants (or none)")
        return value

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @property
    def cooldown_seconds(self) -> float:
        return seconds(self.cooldown)


class PolicySpec(_Spec):
    """Rules every playbook shares."""

    arbitration_window: Duration = "1h"
    caps: list[CapSpec] = Field(default_factory=list)
    quiet_hours: QuietWindow | None = Field(
        None, description="Default local quiet hours for customers with a profile (in its time zone).")
    consent_required: list[Channel] = Field(
        default_factory=list, description="Channels that need an explicit opt-in in the profile.")
    global_holdout: float = Field(0.0, ge=0.0, le=0.5)
    reengagement_window: Duration = "7d"


class PlaybookFile(_Spec):
    """The whole file: a version, the shared policy and the playbooks."""

    version: Literal[1] = 1
    policy: PolicySpec = Field(default_factory=PolicySpec)
    playbooks: list[PlaybookSpec] = Field(min_length=1)

    @field_validator("playbooks")
    @classmethod
    def _unique_names(cls, playbooks: list[PlaybookSpec]) -> list[PlaybookSpec]:
        if twice := repeated(p.name for p in playbooks):
            raise ValueError(f"playbook names must be unique; repeated: {', '.join(twice)}")
        return playbooks
