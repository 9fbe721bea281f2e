""""Why (not)?": every decision about a customer is kept (bounded) in its state, survives the codec,
and reads back with its reason and ISO-8601 times (docs/why-not.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from forethought.contracts.events import ErrorEvent
from forethought.contracts.records import Profile
from forethought.core.config import EngineConfig
from forethought.core.engine import Step, process, tick
from forethought.core.ledger import MAX_DECISIONS, Noted, PolicyLedger
from forethought.core.ledger_codec import LEDGER
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Rules
from forethought.core.state import CustomerState
from forethought.core.why import customer_view, decisions_view, iso, with_iso_times
from forethought.ops.playbooks import parse_rules

CONFIG = EngineConfig(bucket_seconds=10, burst_min_errors=3, burst_quiet_buckets=1)
T0 = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc).timestamp()
DATA = Path(__file__).parent / "data"
BURST = """  - name: burst
    on: [error_burst]
    channels: [in_app]
    priority: 70
"""


def rules(playbooks: str, policy: str = "  arbitration_window: 1h\n") -> Rules:
    return parse_rules(f"policy:\n{policy}playbooks:\n{playbooks}")


class Customer:
    """One customer driven through the engine's entry points with real playbooks."""

    def __init__(self, rules: Rules, zone: str | None = None) -> None:
        self.rules, self.state, self.n = rules, None, 0
        self.profile = ProfileState()
        if zone is not None:
            self.profile = self.profile.with_profile(Profile(
                customer_id="c1", updated_at=datetime.fromtimestamp(T0 - 86_400, tz=timezone.utc), timezone=zone))

    def burst(self, at: float) -> None:
        """Three errors in the 10 s bucket of ``at``: one error burst."""
        start = at - at % CONFIG.bucket_seconds
        for i in range(3):
            self.n += 1
            event = ErrorEvent(event_id=f"e{self.n}", customer_id="c1", code="E1",
                               occurred_at=datetime.fromtimestamp(start + i, tz=timezone.utc))
            self.apply(process(self.state, event, CONFIG, self.rules, self.profile))

    def tick(self, at: float) -> None:
        assert self.state is not None
        self.apply(tick(self.state, at, CONFIG, self.rules, self.profile))

    def apply(self, step: Step) -> None:
        self.state = step.state

    @property
    def kept(self) -> list[tuple[str, str, str | None]]:
        assert self.state is not None
        return [(n.playbook, n.verdict, n.reason or n.channel) for n in self.state.policy.decisions]


def test_sent_and_suppressed_decisions_are_kept_in_order_with_their_reasons() -> None:
    customer = Customer(rules(BURST + "    cooldown: 1h\n"))
    for at in (T0, T0 + 1800, T0 + 4000):
        customer.burst(at)
    assert customer.kept == [("burst", "sent", "in_app"), ("burst", "suppressed", "cooldown"),
                             ("burst", "sent", "in_app")]
    assert [n.at for n in customer.state.policy.decisions] == [T0 + 2, T0 + 1802, T0 + 4002]


def test_arbitration_holdout_deferral_and_release_are_kept() -> None:
    two = BURST + BURST.replace("name: burst", "name: minor").replace("priority: 70", "priority: 40")
    rival = Customer(rules(two))
    rival.burst(T0)
    assert rival.kept == [("burst", "sent", "in_app"), ("minor", "suppressed", "arbitration")]

    held = Customer(rules(BURST + "    holdout: 1.0\n"))
    held.burst(T0)
    assert held.kept == [("burst", "held_out", "holdout")]

    night = Customer(rules(BURST, '  quiet_hours: "22:00-08:00"\n'), zone="Asia/Tokyo")
    night.burst(datetime(2026, 11, 2, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp())
    night.tick(datetime(2026, 11, 3, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp())
    assert night.kept == [("burst", "deferred", "in_app"), ("burst", "released", "in_app")]


def test_shadow_playbooks_keep_what_they_would_have_sent_but_not_their_suppressions() -> None:
    shadow = BURST.replace("name: burst", "name: trial").replace("priority: 70", "priority: 90") + \
        "    mode: shadow\n    cooldown: 1h\n"
    customer = Customer(rules(shadow))
    customer.burst(T0)
    customer.burst(T0 + 600)  # the shadow playbook's cooldown: a suppression nobody would notice
    assert customer.kept == [("trial", "shadow", "in_app")]


def decision(at: float, playbook: str = "burst", verdict: str = "suppressed", reason: str | None = "cooldown",
             mode: str = "live") -> SimpleNamespace:
    return SimpleNamespace(at=at, playbook=playbook, verdict=verdict, reason=reason, channel=None, mode=mode)


def test_the_list_is_bounded_and_keeps_the_newest_oldest_first() -> None:
    ledger = PolicyLedger()
    for i in range(3 * MAX_DECISIONS):  # alternating reasons: none repeats the one before it
        ledger.note([decision(T0 + i, reason=("cooldown", "frequency_cap")[i % 2])])
    assert len(ledger.decisions) == MAX_DECISIONS
    assert [n.at for n in ledger.decisions] == [T0 + i for i in range(2 * MAX_DECISIONS, 3 * MAX_DECISIONS)]


def test_a_repeated_decision_counts_instead_of_pushing_the_others_out() -> None:
    ledger = PolicyLedger()
    ledger.note([decision(T0, verdict="sent", reason=None)])
    ledger.note([decision(T0 + 10 + i, reason="episode") for i in range(100)])
    ledger.note([decision(T0 + 200, playbook="other")])
    ledger.note([decision(T0 + 300, reason="episode")])  # still the burst playbook's newest: counted, moved last
    assert [(n.verdict, n.reason, n.count, n.first, n.at) for n in ledger.decisions] == [
        ("sent", None, 1, T0, T0), ("suppressed", "cooldown", 1, T0 + 200, T0 + 200),
        ("suppressed", "episode", 101, T0 + 10, T0 + 300)]
    assert [n.playbook for n in ledger.decisions] == ["burst", "other", "burst"]


def test_every_send_keeps_its_own_place() -> None:
    ledger = PolicyLedger()
    ledger.note([decision(T0 + i, verdict="sent", reason=None) for i in range(3)])
    assert [(n.at, n.count) for n in ledger.decisions] == [(T0, 1), (T0 + 1, 1), (T0 + 2, 1)]


def test_kept_decisions_survive_the_changelog_codec_and_the_json_form() -> None:
    customer = Customer(rules(BURST + "    cooldown: 1h\n    holdout: 0.0\n"))
    for at in (T0, T0 + 1800, T0 + 1900):
        customer.burst(at)
    state = customer.state
    assert state is not None and len(state.policy.decisions) == 2  # sent, then cooldown twice (counted)
    restored = CustomerState.from_bytes(state.to_bytes(), CONFIG)  # a worker restart, from the changelog
    assert restored.policy.decisions == state.policy.decisions and restored == state
    assert CustomerState.from_dict(state.to_dict(), CONFIG) == state
    assert state.copy().policy.decisions == state.policy.decisions


def test_texts_the_codec_has_no_number_for_round_trip_through_the_state_word_list() -> None:
    ledger = PolicyLedger(decisions=[
        Noted(T0, "a new playbook", "a future verdict", "a new reason", "pigeon", 3, T0 - 5),
        Noted(T0 + 1.5, "a new playbook", "sent", None, "email")])
    assert LEDGER.back(LEDGER.out(ledger, int(T0)), int(T0), CONFIG) == ledger


def test_states_written_before_decisions_were_kept_load_and_write_as_before() -> None:
    for name in ("state-v1-busy.bin", "state-v3-busy.json"):
        state = CustomerState.from_bytes((DATA / name).read_bytes(), CONFIG)
        assert state.policy.decisions == []
    assert LEDGER.out(PolicyLedger(episodes=b"x"), 0) == [[], b"x", [], [], []]  # no sixth part without decisions


@pytest.mark.parametrize("decisions", [
    [["burst"], [[0, -2, 0, None, None]]],          # a word the list does not have
    [["burst"], [[0, -1, 99, None, None]]],         # a number no text has
    [["burst"], [[0, -1, 0, None]]],                # an entry too short
    [["burst"], [[0, -1, 0, None, None, 0, 0]]],    # a count of zero
    [["burst"], [[0, None, 0, None, None]]],        # no playbook
    [[7], []],                                      # a word that is not text
    [["burst"], [["0", -1, 0, None, None]]],        # a time that is not a number
])
def test_malformed_kept_decisions_are_refused(decisions: list) -> None:
    with pytest.raises(ValueError):
        LEDGER.back([[], b"", [], [], [], decisions], 0, CONFIG)
    with pytest.raises(ValueError):
        LEDGER.back([[], b"", [], [], [], decisions, "a seventh part"], 0, CONFIG)


def test_the_view_has_the_decisions_and_every_point_in_time_as_iso_8601_text() -> None:
    customer = Customer(rules(BURST + "    cooldown: 1h\n"))
    customer.burst(T0)
    customer.burst(T0 + 1800)
    assert customer.state is not None
    view = with_iso_times(customer_view(customer.state, T0 + 3600, CONFIG))
    assert view["as_of"] == "2026-11-02T04:00:00Z" and view["last_seen"] == iso(T0 + 1802)
    assert [(d["at"], d["verdict"], d["reason"], d["why"]) for d in view["decisions"]] == [
        ("2026-11-02T03:00:02Z", "sent", None, None),
        ("2026-11-02T03:30:02Z", "suppressed", "cooldown", "the playbook sent within its cooldown")]
    assert view["policy"]["sent"][0]["at"] == "2026-11-02T03:00:02Z"
    assert isinstance(view["silence_seconds"], float)  # a duration stays a number
    assert [d["verdict"] for d in decisions_view(customer.state.policy, until=T0 + 60)] == ["sent"]
