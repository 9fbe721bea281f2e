"""The trigger policy through the engine's entry points: one rule per test, then properties."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.contracts.events import ErrorEvent, FeatureUsed, PageView
from forethought.contracts.records import Outcome, Profile
from forethought.core.config import EngineConfig
from forethought.core.engine import Step, observe_outcome, observe_profile, process, tick
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.timing import QuietHours
from forethought.core.state import CustomerState
from forethought.ops.playbooks import parse_rules

CONFIG = EngineConfig(bucket_seconds=10, burst_min_errors=3, burst_quiet_buckets=1)
T0 = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc).timestamp()  # 12:00 in Tokyo


def rules(playbooks: str, policy: str = "") -> object:
    return parse_rules(f"policy:\n{policy or '  arbitration_window: 1h'}\nplaybooks:\n{playbooks}")


BURST = """  - name: burst
    on: [error_burst]
    channels: [in_app]
    priority: 70
"""


class Customer:
    """Drives one customer through the engine, remembering everything it produced."""

    def __init__(self, rules: object, customer_id: str = "c1", profile: Profile | None = None) -> None:
        self.rules, self.customer_id, self.state = rules, customer_id, None
        self.profile = ProfileState() if profile is None else ProfileState().with_profile(profile)
        self.steps: list[Step] = []
        self.n = 0

    def apply(self, step: Step) -> Step:
        self.steps.append(step)
        self.state = step.state
        self.profile = step.profile or self.profile
        return step

    def event(self, event: object) -> Step:
        return self.apply(process(self.state, event, CONFIG, self.rules, self.profile))

    def burst(self, at: float) -> Step:
        """Three errors in the 10 s bucket of ``at`` (after enough quiet for the detector to re-arm)."""
        start = at - at % CONFIG.bucket_seconds
        steps = [self.event(self.error(start + i)) for i in range(3)]
        return Step(steps[-1].state, sum((s.triggers for s in steps), ()), (), sum((s.shadow for s in steps), ()),
                    sum((s.decisions for s in steps), ()))

    def error(self, at: float) -> ErrorEvent:
        self.n += 1
        return ErrorEvent(event_id=f"{self.customer_id}-{self.n}", customer_id=self.customer_id, code="E1",
                          occurred_at=_dt(at))

    def page(self, at: float) -> Step:
        self.n += 1
        return self.event(PageView(event_id=f"{self.customer_id}-{self.n}", customer_id=self.customer_id,
                                   occurred_at=_dt(at)))

    def tick(self, at: float) -> Step:
        assert self.state is not None
        return self.apply(tick(self.state, at, CONFIG, self.rules, self.profile))

    def outcome(self, trigger_id: str, channel: str, status: str, at: float) -> Step:
        outcome = Outcome(outcome_id=f"o-{trigger_id}-{status}", trigger_id=trigger_id, customer_id=self.customer_id,
                          channel=channel, status=status, occurred_at=_dt(at))
        return self.apply(observe_outcome(self.state, self.profile, outcome, CONFIG, self.rules))

    @property
    def triggers(self) -> list:
        return [t for s in self.steps for t in s.triggers]

    @property
    def decisions(self) -> list:
        return [d for s in self.steps for d in s.decisions]


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def profile(customer_id: str = "c1", **fields: object) -> Profile:
    return Profile(customer_id=customer_id, updated_at=_dt(T0 - 86_400), **fields)


# --- arbitration ---------------------------------------------------------------------------

def test_the_highest_priority_playbook_wins_and_the_other_is_suppressed_by_arbitration() -> None:
    two = BURST + BURST.replace("name: burst", "name: minor").replace("priority: 70", "priority: 40")
    customer = Customer(rules(two))
    customer.burst(T0)
    assert [t.playbook for t in customer.triggers] == ["burst"]
    assert ("minor", "arbitration") in [(d.playbook, d.reason) for d in customer.decisions]


def test_a_higher_priority_trigger_still_goes_out_after_a_lower_one() -> None:
    low = BURST.replace("name: burst", "name: low").replace("priority: 70", "priority: 40")
    high = BURST.replace("name: burst", "name: high").replace("on: [error_burst]", "on: [feature_first_use]")
    customer = Customer(rules(low + high))
    customer.burst(T0)
    customer.event(FeatureUsed(event_id="f", customer_id="c1", feature="export", occurred_at=_dt(T0 + 600)))
    assert [t.playbook for t in customer.triggers] == ["low", "high"]


# --- consent -------------------------------------------------------------------------------

CONSENT = "  consent_required: [email]\n"
EMAIL_FIRST = BURST.replace("channels: [in_app]", "channels: [email, in_app]")


def test_a_channel_without_consent_falls_to_the_next_preferred_one() -> None:
    unknown = Customer(rules(EMAIL_FIRST, CONSENT))
    unknown.burst(T0)
    agreed = Customer(rules(EMAIL_FIRST, CONSENT), profile=profile(consent={"email": True}))
    agreed.burst(T0)
    assert [t.channel for t in unknown.triggers] == ["in_app"]
    assert [t.channel for t in agreed.triggers] == ["email"]
    assert "consent: email" in agreed.triggers[0].why.checks


def test_global_opt_out_and_no_allowed_channel_are_suppressions_with_reasons() -> None:
    gone = Customer(rules(EMAIL_FIRST, CONSENT), profile=profile(opted_out=True))
    gone.burst(T0)
    email_only = BURST.replace("channels: [in_app]", "channels: [email]")
    silent = Customer(rules(email_only, CONSENT))
    silent.burst(T0)
    assert gone.triggers == [] and [d.reason for d in gone.decisions] == ["opted_out"]
    assert silent.triggers == [] and [d.reason for d in silent.decisions] == ["consent"]


def test_an_unsubscribe_outcome_stops_the_channel_at_once() -> None:
    customer = Customer(rules(EMAIL_FIRST, CONSENT), profile=profile(consent={"email": True}))
    first = customer.burst(T0).triggers[0]
    step = customer.outcome(first.trigger_id, "email", "unsubscribed", T0 + 60)
    assert step.profile is not None and not step.profile.allows("email", frozenset({"email"}))
    second = customer.burst(T0 + 3600).triggers
    assert [t.channel for t in second] == ["in_app"]


def test_a_failed_delivery_falls_back_once_to_the_next_channel() -> None:
    customer = Customer(rules(EMAIL_FIRST, CONSENT), profile=profile(consent={"email": True}))
    first = customer.burst(T0).triggers[0]
    retry = customer.outcome(first.trigger_id, "email", "failed", T0 + 30).triggers
    again = customer.outcome(first.trigger_id, "email", "failed", T0 + 40).triggers
    assert [(t.channel, t.fallback_of, t.episode) for t in retry] == [("in_app", first.trigger_id, first.episode)]
    assert retry[0].trigger_id != first.trigger_id and again == ()


def test_a_fallback_continues_its_decision_past_the_playbooks_cooldown_and_caps() -> None:
    """The failed email never arrived: its in-app fallback is the same decision, so neither the playbook's
    own cooldown nor a one-message-a-day cap (which the failed send would fill) holds it back."""
    one_a_day = CONSENT + "  caps:\n    - {channel: any, max: 1, per: 1d}\n"
    customer = Customer(rules(EMAIL_FIRST + "    cooldown: 1d\n", one_a_day), profile=profile(consent={"email": True}))
    first = customer.burst(T0).triggers[0]
    retry = customer.outcome(first.trigger_id, "email", "failed", T0 + 30)
    assert [(t.channel, t.fallback_of) for t in retry.triggers] == [("in_app", first.trigger_id)]
    assert customer.burst(T0 + 3600).triggers == (), "the cooldown and the cap still hold for the next decision"
    assert [d.reason for d in customer.steps[-1].decisions] == ["cooldown"]


def test_a_fallback_still_yields_to_a_later_send_of_its_playbook() -> None:
    """Another message of the playbook went out after the failed one: the fallback would be a second
    message within the cooldown, so it is suppressed."""
    book = EMAIL_FIRST + "    cooldown: 1h\n    ttl: 1d\n"
    customer = Customer(rules(book, CONSENT), profile=profile(consent={"email": True}))
    first = customer.burst(T0).triggers[0]
    second = customer.burst(T0 + 7200).triggers
    late = customer.outcome(first.trigger_id, "email", "failed", T0 + 7300)
    assert [t.channel for t in second] == ["email"]
    assert late.triggers == () and [d.reason for d in late.decisions] == ["cooldown"]


# --- quiet hours ---------------------------------------------------------------------------

QUIET = '  quiet_hours: "22:00-08:00"\n'
TOKYO_23H = datetime(2026, 11, 2, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
TOKYO_08H = datetime(2026, 11, 3, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()


def test_a_trigger_at_23h_in_tokyo_is_deferred_to_08h_and_survives_a_restart() -> None:
    customer = Customer(rules(BURST, QUIET), profile=profile(timezone="Asia/Tokyo"))
    fired = customer.burst(TOKYO_23H)
    assert fired.triggers == () and "deferred" in [d.verdict for d in fired.decisions]
    restored = CustomerState.from_bytes(customer.state.to_bytes(), CONFIG)  # a worker restart
    customer.state = restored
    assert customer.tick(TOKYO_08H - 1).triggers == ()
    released = customer.tick(TOKYO_08H).triggers
    assert len(released) == 1
    trigger = released[0]
    assert trigger.released_at.timestamp() == TOKYO_08H and trigger.fired_at.timestamp() < TOKYO_23H + 10
    assert trigger.expires_at > trigger.released_at
    assert any(c.startswith("quiet hours: deferred") and "Asia/Tokyo" in c for c in trigger.why.checks)
    assert customer.tick(TOKYO_08H + 3600).triggers == ()  # released once


def test_a_deferred_trigger_wins_arbitration_over_a_lower_one_that_comes_while_it_waits() -> None:
    low = BURST.replace("name: burst", "name: low").replace("priority: 70", "priority: 40")
    customer = Customer(rules(BURST + low, QUIET), profile=profile(timezone="Asia/Tokyo"))
    customer.burst(TOKYO_23H)
    released = customer.tick(TOKYO_08H).triggers
    assert [(d.playbook, d.verdict, d.reason) for d in customer.decisions[:2]] == [
        ("burst", "deferred", None), ("low", "suppressed", "arbitration")]
    assert [t.playbook for t in released] == ["burst"]


def test_drop_suppresses_ignore_sends_and_customers_without_profile_have_no_quiet_hours() -> None:
    dropping = Customer(rules(BURST + "    quiet_hours: drop\n", QUIET), profile=profile(timezone="Asia/Tokyo"))
    dropping.burst(TOKYO_23H)
    ignoring = Customer(rules(BURST + "    quiet_hours: ignore\n", QUIET), profile=profile(timezone="Asia/Tokyo"))
    ignoring.burst(TOKYO_23H)
    unknown = Customer(rules(BURST, QUIET))
    unknown.burst(TOKYO_23H)
    assert dropping.triggers == [] and [d.reason for d in dropping.decisions] == ["quiet_hours"]
    assert len(ignoring.triggers) == 1 and len(unknown.triggers) == 1


def test_a_profile_may_set_its_own_quiet_hours() -> None:
    customer = Customer(rules(BURST, QUIET), profile=profile(timezone="Asia/Tokyo", quiet_hours="10:00-14:00"))
    customer.burst(T0)  # 12:00 in Tokyo
    assert customer.triggers == []
    opens = datetime(2026, 11, 2, 14, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    assert [t.released_at.timestamp() for t in customer.tick(opens).triggers] == [opens]


ZONES = ["Asia/Tokyo", "America/New_York", "Europe/London", "Australia/Lord_Howe", "America/St_Johns", "UTC"]


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), at=st.floats(1_767_225_600, 1_830_297_600),  # 2026..2027
       window=st.sampled_from(["22:00-08:00", "01:00-02:30", "00:30-06:00", "20:00-23:59"]))
def test_no_trigger_is_ever_released_inside_the_customers_quiet_hours(zone: str, at: float, window: str) -> None:
    customer = Customer(rules(BURST, f'  quiet_hours: "{window}"\n'), profile=profile(timezone=zone))
    customer.burst(at)
    customer.tick(at + 2 * 86_400)
    quiet = QuietHours.parse(window)
    assert len(customer.triggers) == 1
    sent = customer.triggers[0]
    sent_at = (sent.released_at or sent.fired_at).timestamp()
    assert not quiet.contains(sent_at, zone)
    if sent.released_at is not None:
        assert sent_at == quiet.next_open(sent.fired_at.timestamp(), zone)


# --- caps, cooldowns, episodes -------------------------------------------------------------

CAPS = "  caps:\n    - {channel: any, max: 2, per: 1d}\n    - {channel: in_app, max: 3, per: 7d}\n  arbitration_window: 0s\n"


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(min_value=3600, max_value=200_000), min_size=5, max_size=40))
def test_frequency_caps_hold_in_every_rolling_window(gaps: list[int]) -> None:
    customer = Customer(rules(BURST, CAPS))
    at = T0
    for gap in gaps:
        at += gap
        customer.burst(at)
    sent = sorted(t.fired_at.timestamp() for t in customer.triggers)
    assert all(sum(1 for s in sent if t - 86_400 < s <= t) <= 2 for t in sent)
    assert all(sum(1 for s in sent if t - 7 * 86_400 < s <= t) <= 3 for t in sent)
    capped = [d for d in customer.decisions if d.reason == "frequency_cap"]
    assert len(sent) + len(capped) == len(gaps)  # every burst was sent or counted as capped


def test_cooldown_and_episodes() -> None:
    customer = Customer(rules(BURST + "    cooldown: 1h\n"))
    customer.burst(T0)
    customer.burst(T0 + 1800)
    customer.burst(T0 + 4000)
    assert len(customer.triggers) == 2
    assert [d.reason for d in customer.decisions if d.verdict == "suppressed"] == ["cooldown"]


# --- holdout, shadow, re-engagement --------------------------------------------------------

def test_a_held_out_customer_gets_nothing_but_is_measured_like_the_treated() -> None:
    held = Customer(rules(BURST + "    holdout: 1.0\n", "  reengagement_window: 1d\n"))
    held.burst(T0)
    back = held.page(T0 + 3600)
    treated = Customer(rules(BURST, "  reengagement_window: 1d\n"), customer_id="c2")
    treated.burst(T0)
    gone = treated.tick(T0 + 2 * 86_400)
    assert held.triggers == [] and [d.verdict for d in held.decisions] == ["held_out"]
    assert [(o.kind, o.detail) for o in back.observations] == [("reengaged", {"playbook": "burst", "group": "holdout"})]
    assert [(o.kind, o.detail["group"]) for o in gone.observations] == [("not_reengaged", "treated")]


def test_only_customers_who_would_have_received_the_trigger_are_held_out() -> None:
    email_only = BURST.replace("channels: [in_app]", "channels: [email]") + "    holdout: 1.0\n"
    unreachable = Customer(rules(email_only, CONSENT))
    unreachable.burst(T0)
    reachable = Customer(rules(email_only, CONSENT), profile=profile(consent={"email": True}))
    reachable.burst(T0)
    assert [(d.verdict, d.reason) for d in unreachable.decisions] == [("suppressed", "consent")]
    assert [(d.verdict, d.reason) for d in reachable.decisions] == [("held_out", "holdout")]
    assert unreachable.state.policy.watch == [] and len(reachable.state.policy.watch) == 1


def test_a_suppressed_lifecycle_playbook_tries_again_at_the_next_daily_look() -> None:
    signup = datetime(2026, 11, 1, tzinfo=timezone.utc)
    email_only = ONBOARDING.replace("channels: [in_app]", "channels: [email]")
    customer = Customer(rules(email_only, CONSENT), customer_id="late")
    p = Profile(customer_id="late", updated_at=signup, signup_date=signup.date())
    customer.apply(observe_profile(None, ProfileState(), p, signup.timestamp(), CONFIG))
    for day in range(1, 6):
        customer.tick(signup.timestamp() + day * 86_400)
    customer.profile = customer.profile.with_profile(p.model_copy(update={"consent": {"email": True},
                                                                           "updated_at": signup + timedelta(days=5)}))
    for day in range(6, 10):
        customer.tick(signup.timestamp() + day * 86_400)
    assert [d.reason for d in customer.decisions if d.verdict == "suppressed"] == ["consent"] * 2
    assert len(customer.triggers) == 1 and 5 <= (customer.triggers[0].fired_at - signup).days <= 6


def test_holdout_assignment_is_deterministic_and_near_the_share() -> None:
    book = rules(BURST + "    holdout: 0.2\n")
    groups = []
    for i in range(300):
        customer = Customer(book, customer_id=f"cust-{i}")
        customer.burst(T0)
        groups.append(customer.triggers == [])
    again = Customer(book, customer_id="cust-7")
    again.burst(T0 + 999)
    assert 0.12 < sum(groups) / len(groups) < 0.28
    assert (again.triggers == []) == groups[7]


def test_shadow_playbooks_are_counted_and_written_aside_without_using_caps() -> None:
    shadow = BURST.replace("name: burst", "name: trial") + "    mode: shadow\n"
    customer = Customer(rules(BURST + shadow.replace("priority: 70", "priority: 90"),
                              "  caps:\n    - {channel: any, max: 1, per: 1d}\n  arbitration_window: 0s\n"))
    step = customer.burst(T0)
    assert [t.playbook for t in step.shadow] == ["trial"] and step.shadow[0].mode == "shadow"
    assert [t.playbook for t in step.triggers] == ["burst"]  # the shadow trigger used no cap


# --- lifecycle -----------------------------------------------------------------------------

ONBOARDING = """  - name: onboarding
    on: [daily]
    when: profile.days_since_signup >= 3 and not features.used.onboarding_completed
    channels: [in_app]
    priority: 40
"""


def test_onboarding_stalled_fires_once_for_a_customer_who_never_produced_an_event() -> None:
    book = rules(ONBOARDING)
    signup = datetime(2026, 11, 1, tzinfo=timezone.utc)
    customer = Customer(book, customer_id="new")
    p = Profile(customer_id="new", updated_at=signup, signup_date=signup.date())
    customer.apply(observe_profile(None, ProfileState(), p, signup.timestamp(), CONFIG))
    for day in range(1, 10):
        customer.tick(signup.timestamp() + day * 86_400)
    fired = customer.triggers
    assert len(fired) == 1 and fired[0].detector == "daily"
    assert 3 <= (fired[0].fired_at - signup) / timedelta(days=1) < 4


def test_a_customer_who_completed_onboarding_is_left_alone() -> None:
    signup = datetime(2026, 11, 1, tzinfo=timezone.utc)
    customer = Customer(rules(ONBOARDING), customer_id="done",
                        profile=Profile(customer_id="done", updated_at=signup, signup_date=signup.date()))
    customer.event(FeatureUsed(event_id="x", customer_id="done", feature="onboarding_completed",
                               occurred_at=signup + timedelta(hours=5)))
    for day in range(1, 10):
        customer.tick(signup.timestamp() + day * 86_400)
    assert customer.triggers == []


def test_a_condition_that_cannot_be_evaluated_is_a_counted_suppression_not_a_crash() -> None:
    odd = BURST.replace("priority: 70", "priority: 70\n    when: profile.plan > 3")
    customer = Customer(rules(odd), profile=profile(plan="pro"))
    customer.burst(T0)
    assert customer.triggers == [] and [d.reason for d in customer.decisions] == ["condition_error"]


# --- bounded trigger context ---------------------------------------------------------------

JOINED = BURST + """    context:
      account: profile.attributes.company + " / " + profile.attributes.segment
"""


def test_a_context_joining_two_long_attributes_is_cut_to_the_contracts_limit() -> None:
    """Each attribute may hold 1024 characters; their join may not, and used to make the trigger raise."""
    from forethought.contracts.events import MAX_PROPERTY_CHARS
    from forethought.contracts.records import Trigger

    customer = Customer(rules(JOINED), profile=profile(attributes={"company": "c" * 1000, "segment": "s" * 1000}))
    customer.burst(T0)
    [trigger] = customer.triggers
    value = trigger.context["account"]
    assert len(value) == MAX_PROPERTY_CHARS and value.endswith("…") and value.startswith("c" * 1000 + " / s")
    assert Trigger.model_validate_json(trigger.model_dump_json()) == trigger


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=1024), st.text(max_size=1024))
def test_any_attributes_the_contract_allows_make_a_valid_trigger(company: str, segment: str) -> None:
    from forethought.contracts.events import MAX_PROPERTY_CHARS
    from forethought.contracts.records import Trigger

    customer = Customer(rules(JOINED), profile=profile(attributes={"company": company, "segment": segment}))
    customer.burst(T0)
    [trigger] = customer.triggers
    joined = f"{company} / {segment}"
    value = trigger.context["account"]
    assert value == joined if len(joined) <= MAX_PROPERTY_CHARS else value == joined[:MAX_PROPERTY_CHARS - 1] + "…"
    assert Trigger.model_validate_json(trigger.model_dump_json()) == trigger


def test_a_context_name_a_trigger_could_not_carry_is_refused_when_the_playbooks_load() -> None:
    import pytest

    with pytest.raises(ValueError, match="context"):
        rules(BURST + f"    context:\n      {'n' * 129}: profile.plan\n")
