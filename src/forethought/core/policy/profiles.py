"""What the policy knows of a customer beyond behaviour: the profile, and opt-outs from outcomes.

An ``unsubscribed`` outcome stops that channel at once. It stays in force until a profile
*newer than the unsubscribe* opts the customer back in on that channel (the upstream system
of record has heard from the customer again):

>>> from datetime import datetime, timezone
>>> from forethought.contracts.records import Outcome, Profile
>>> at = lambda h: datetime(2026, 11, 22, h, tzinfo=timezone.utc)
>>> known = ProfileState().with_profile(Profile(customer_id="c1", updated_at=at(1), consent={"email": True}))
>>> known.allows("email", frozenset())
True
>>> gone = known.after_outcome(Outcome(outcome_id="o1", trigger_id="t1", customer_id="c1", channel="email",
...                                    status="unsubscribed", occurred_at=at(2)))
>>> gone.allows("email", frozenset())
False
>>> gone.with_profile(Profile(customer_id="c1", updated_at=at(3), consent={"email": True})).allows("email", frozenset())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from forethought.contracts.records import Outcome, Profile

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ProfileState:
    """The latest profile (None until one arrives) and per-channel unsubscribes (channel → time)."""

    profile: Profile | None = None
    unsubscribed: dict[str, float] = field(default_factory=dict)

    def with_profile(self, profile: Profile) -> ProfileState:
        """Take ``profile`` unless the one held is newer (a compacted topic may replay old values)."""
        if self.profile is not None and profile.updated_at < self.profile.updated_at:
            return self
        return replace(self, profile=profile)

    def after_outcome(self, outcome: Outcome) -> ProfileState:
        """Record an ``unsubscribed`` outcome; other outcomes leave the profile as it is."""
        if outcome.status != "unsubscribed":
            return self
        at = outcome.occurred_at.timestamp()
        since = max(at, self.unsubscribed.get(outcome.channel, at))
        return replace(self, unsubscribed={**self.unsubscribed, outcome.channel: since})

    def allows(self, channel: str, consent_required: frozenset[str]) -> bool:
        """Whether ``channel`` may be used: opt-outs first, then explicit consent, then the default."""
        profile = self.profile
        if profile is not None and profile.opted_out:
            return False
        stopped = self.unsubscribed.get(channel)
        if stopped is not None and not (
            profile is not None and profile.updated_at.timestamp() > stopped
            and channel in profile.consent and profile.consent[channel] is True
        ):
            return False
        if profile is not None and channel in profile.consent:
            return profile.consent[channel]
        return channel not in consent_required

    @property
    def timezone(self) -> str | None:
        """The customer's IANA zone, or None when no profile has arrived (quiet hours unknown)."""
        return None if self.profile is None else self.profile.timezone

    def facts(self, now: float) -> dict[str, Any]:
        """The ``profile.*`` names of the expression language, as of event time ``now``."""
        p = self.profile
        if p is None:
            return {"known": False, "opted_out": False, "attributes": {}, "consent": {}}
        return {
            "known": True, "plan": p.plan, "timezone": p.timezone, "locale": p.locale,
            "signup_date": p.signup_date.isoformat() if p.signup_date else None,
            "renewal_date": p.renewal_date.isoformat() if p.renewal_date else None,
            "days_since_signup": self.days_since_signup(now),
            "days_until_renewal": _days_between(p.renewal_date, now, since=False),
            "opted_out": p.opted_out, "attributes": dict(p.attributes), "consent": dict(p.consent),
        }

    def days_since_signup(self, now: float) -> float | None:
        """Days from the midnight (UTC) of the profile's ``signup_date`` to event time ``now``; None
        without a profile or a signup date."""
        return None if self.profile is None else _days_between(self.profile.signup_date, now, since=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the profile table."""
        return {"p": None if self.profile is None else self.profile.model_dump(mode="json"), "u": self.unsubscribed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileState:
        """Inverse of :meth:`to_dict`."""
        profile = None if data.get("p") is None else Profile.model_validate(data["p"])
        return cls(profile, {str(k): float(v) for k, v in data.get("u", {}).items()})


def _days_between(day: date | None, now: float, *, since: bool) -> float | None:
    if day is None:
        return None
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return round((now - midnight) / DAY if since else (midnight - now) / DAY, 4)
