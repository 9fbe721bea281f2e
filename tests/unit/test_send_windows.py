"""Send windows (issue #16 point 3): a playbook's ``send_window`` holds a trigger until the customer's
likeliest active hour, learned from their own events in their local time, else the population's."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from forethought.contracts.events import ErrorEvent, FeatureUsed, PageView
from forethought.contracts.playbooks import PlaybookSpec
from forethought.contracts.records import Outcome, Profile, Trigger
from forethought.core.checkpoint import open_checkpoint, seal
from forethought.core.config import EngineConfig
from forethought.core.detectors import active_hours
from forethought.core.models import PartitionModels
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.sendwindow import hold
from forethought.core.policy.timing import QuietHours
from forethought.core.registry import Registry, builtin_registry
from forethought.core.runtime import Emission, PartitionRuntime, Record
from forethought.core.sendtime import Activity, PopulationHours, choose, counted, hours
from forethought.core.state import CustomerState
from forethought.ops.playbooks import PlaybookFileError, load_rules, parse_rules

TOKYO = ZoneInfo("Asia/Tokyo")
CONFIG = EngineConfig()
REPO = Path(__file__).resolve().parents[2]


def tokyo(day: int, hour: int, minute: int = 0) -> datetime:
    """Local time in Tokyo on 2026-11-``day``."""
    return datetime(2026, 11, day, hour, minute, tzinfo=TOKYO)


def rules(window: str | None = "24h", policy: str = "  arbitration_window: 1h\n", extra: str = "") -> object:
    line = f"    send_window: {window}\n" if window else ""
    return parse_rules(f"""policy:
{policy}playbooks:
  - name: tip
    on: [feature_first_use]
    channels: [in_app, email]
    priority: 40
{line}{extra}""")


def page(customer: str, at: datetime, n: int) -> PageView:
    return PageView(event_id=f"{customer}-p{n}", customer_id=customer, occurred_at=at)


def feature(customer: str, at: datetime, name: str = "export") -> FeatureUsed:
    return FeatureUsed(event_id=f"{customer}-f-{name}", customer_id=customer, occurred_at=at, feature=name)


def profile(customer: str, zone: str = "Asia/Tokyo", **fields: object) -> Profile:
    return Profile(customer_id=customer, updated_at=datetime(2026, 10, 1, tzinfo=UTC), timezone=zone, **fields)


def habit(customer: str, hour: int, days: range, minute: int = 10) -> list[PageView]:
    """A page view at ``hour``:``minute`` Tokyo time on each of ``days`` (November)."""
    return [page(customer, tokyo(day, hour, minute), day) for day in days]


def triggers(emissions: list[Emission]) -> list[Trigger]:
    return [t for e in emissions if e.step is not None for t in e.step.triggers]


def verdicts(emissions: list[Emission]) -> list[tuple[str, str, str | None]]:
    return [(d.playbook, d.verdict, d.reason) for e in emissions if e.step is not None for d in e.step.decisions]


def feed(runtime: PartitionRuntime, records: list[Record]) -> list[Emission]:
    return [emission for record in records for emission in runtime.feed(record)]


def send_time_check(trigger: Trigger) -> str:
    assert trigger.why is not None
    return next(c for c in trigger.why.checks if c.startswith("send time:"))


# --- the playbook file -----------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["30m", "59m", "8d", "2w"])
def test_a_send_window_outside_1h_to_7d_is_refused_with_a_clear_message(window: str) -> None:
    with pytest.raises(ValidationError, match=f"send_window must be between 1h and 7d, got '{window}'"):
        PlaybookSpec(name="x", on=["silence"], channels=["email"], priority=1, send_window=window)


def test_a_send_window_that_is_no_duration_names_the_field_and_line() -> None:
    with pytest.raises(PlaybookFileError, match=r"line 8, playbooks.0.send_window: .*expected a duration .*'tomorrow'"):
        rules("tomorrow")
    with pytest.raises(PlaybookFileError, match=r"line 8, playbooks.0.send_window: .*between 1h and 7d, got '10d'"):
        rules("10d")
    with pytest.raises(ValidationError, match="send_window"):
        PlaybookSpec(name="x", on=["silence"], channels=["email"], priority=1, send_window=24)


def test_the_bounds_and_absence_of_a_send_window() -> None:
    assert PlaybookSpec(name="x", on=["silence"], channels=["email"], priority=1).send_window is None
    assert [rules(w).playbooks[0].send_window for w in ("1h", "24h", "7d", None)] == [3600.0, 86_400.0, 604_800.0,
                                                                                   None]


# --- releasing at the learned hour ----------------------------------------------------------------


def test_a_trigger_waits_for_the_customers_own_active_hour_and_is_released_there_once() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))  # ten mornings at 09:10 in Tokyo
    decided = feed(runtime, [feature("c1", tokyo(11, 15))])  # a first use at 15:00: the tip is due
    assert triggers(decided) == [] and verdicts(decided) == [("tip", "deferred", None)]
    assert triggers(runtime.advance(tokyo(12, 9).timestamp() - 1)) == []
    released = triggers(runtime.advance(tokyo(12, 9).timestamp()))
    assert len(released) == 1
    tip = released[0]
    assert tip.released_at == tokyo(12, 9) and tip.fired_at == tokyo(11, 15)
    assert tip.expires_at == tokyo(12, 9) + timedelta(days=1)  # the ttl counts from the release
    assert send_time_check(tip) == ("send time: 09:00 Asia/Tokyo, this customer's likeliest active hour"
                                    " (11 active hours of their own), within 24h: deferred to 2026-11-12 09:00")
    assert tip.why is not None and any(c.startswith("caps:") for c in tip.why.checks)  # the policy ran again
    assert triggers(runtime.advance(tokyo(14, 12).timestamp())) == []  # released once


def test_a_new_customer_gets_the_populations_active_hour() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    for n in range(30):  # the partition's customers are on in the evening
        runtime.feed(profile(f"old{n}"))
        feed(runtime, habit(f"old{n}", 20, range(1, 6), minute=n))
    runtime.feed(profile("new"))
    decided = feed(runtime, [feature("new", tokyo(6, 10, 30))])
    assert verdicts(decided) == [("tip", "deferred", None)]
    released = triggers(runtime.advance(tokyo(7, 0).timestamp()))
    assert [t.released_at for t in released] == [tokyo(6, 20)]
    assert send_time_check(released[0]).startswith(
        "send time: 20:00 Asia/Tokyo, the population's likeliest active hour (this customer has 1 active hours,"
        " fewer than 8)")


def test_without_any_activity_profile_the_trigger_goes_at_once_and_says_so() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules())  # no models: no population either
    runtime.feed(profile("c1"))
    sent = triggers(runtime.feed(feature("c1", tokyo(11, 15))))
    assert len(sent) == 1 and sent[0].released_at is None
    assert send_time_check(sent[0]) == "send time: now (within 24h; no activity profile yet)"


def test_a_customer_active_before_the_planned_hour_gets_it_then() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))
    feed(runtime, [feature("c1", tokyo(11, 15))])
    same_visit = feed(runtime, [page("c1", tokyo(11, 15, 20), 98)])  # the visit it was decided in goes on
    assert verdicts(same_visit) == [] and runtime.state("c1").policy.pending  # type: ignore[union-attr]
    back = feed(runtime, [page("c1", tokyo(12, 7, 30), 99)])  # a new visit, before 09:00
    assert verdicts(back) == [("tip", "released", None)]
    [tip] = triggers(back)
    assert tip.released_at == tokyo(12, 7, 30)
    assert tip.why is not None and tip.why.checks[-1].startswith("quiet hours") is False
    assert any(c == "send time: active at 2026-11-12 07:30, released before the planned hour" for c in tip.why.checks)
    assert triggers(runtime.advance(tokyo(13, 12).timestamp())) == []


def test_the_current_hour_when_it_is_the_best_means_now() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 15, range(1, 11)))
    sent = triggers(feed(runtime, [feature("c1", tokyo(11, 15, 40))]))
    assert len(sent) == 1 and sent[0].released_at is None
    assert send_time_check(sent[0]).startswith("send time: now, 15:00 Asia/Tokyo, this customer's likeliest")


def test_a_shadow_playbook_says_when_it_would_send_and_goes_to_the_shadow_topic_at_once() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(extra="    mode: shadow\n"), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))
    emissions = runtime.feed(feature("c1", tokyo(11, 15)))
    shadow = [t for e in emissions if e.step is not None for t in e.step.shadow]
    assert triggers(emissions) == [] and len(shadow) == 1 and not runtime.state("c1").policy.pending
    assert ": would defer to 2026-11-12 09:00" in send_time_check(shadow[0])


# --- quiet hours, caps, holdout -------------------------------------------------------------------

QUIET = '  arbitration_window: 1h\n  quiet_hours: "22:00-08:00"\n'


def test_quiet_hours_win_over_a_late_active_hour() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(policy=QUIET), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 23, range(1, 11)))  # most active at 23:10, inside quiet hours
    decided = feed(runtime, [feature("c1", tokyo(11, 2))])  # at 02:00, quiet
    assert verdicts(decided) == [("tip", "deferred", None)]
    assert feed(runtime, [page("c1", tokyo(11, 3), 98)]) and runtime.state("c1").policy.pending  # active, but quiet
    released = triggers(runtime.advance(tokyo(12, 0).timestamp()))
    assert [t.released_at for t in released] == [tokyo(11, 8)]  # the first hour outside quiet hours
    assert "outside quiet hours 22:00-08:00" in send_time_check(released[0])


def test_a_cap_filled_while_the_trigger_waits_is_decided_as_any_deferred_trigger() -> None:
    capped = rules(policy="  arbitration_window: 0s\n  caps: [{channel: any, max: 1, per: 1d}]\n", extra="""\
  - name: burst
    on: [error_burst]
    channels: [in_app, email]
    priority: 70
""")
    runtime = PartitionRuntime(0, EngineConfig(bucket_seconds=10, burst_min_errors=3), capped, PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))
    feed(runtime, [feature("c1", tokyo(11, 15))])
    burst = [ErrorEvent(event_id=f"e{i}", customer_id="c1", code="E1", occurred_at=tokyo(11, 16) + timedelta(seconds=i))
             for i in range(3)]
    assert [t.playbook for t in triggers(feed(runtime, burst))] == ["burst"]  # uses the day's only send
    assert runtime.state("c1").policy.pending  # the tip still waits
    late = runtime.advance(tokyo(12, 9).timestamp())
    assert triggers(late) == [] and verdicts(late) == [("tip", "suppressed", "frequency_cap")]


def test_a_held_out_customer_is_measured_from_the_decision_and_gets_nothing_later() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(extra="    holdout: 1.0\n"), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))
    decided = feed(runtime, [feature("c1", tokyo(11, 15))])
    assert verdicts(decided) == [("tip", "held_out", "holdout")]
    assert triggers(runtime.advance(tokyo(13, 0).timestamp())) == [] and not runtime.state("c1").policy.pending


@settings(max_examples=300, deadline=None)
@given(counts=st.lists(st.integers(0, 15), min_size=24, max_size=24),
       now=st.floats(1_790_000_000, 1_800_000_000), window=st.sampled_from([3600.0, 7200.0, 86_400.0, 604_800.0]),
       zone=st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York", "Europe/Berlin", "Asia/Kolkata",
                             "Australia/Lord_Howe"]),
       quiet=st.sampled_from(["22:00-08:00", "00:00-06:30", "13:00-14:00", "20:30-07:45"]))
def test_a_release_is_never_inside_quiet_hours_nor_outside_the_window(counts: list[int], now: float, window: float,
                                                                       zone: str, quiet: str) -> None:
    own = bytes(counts[2 * i] | counts[2 * i + 1] << 4 for i in range(12))
    night = QuietHours.parse(quiet)
    at, check = hold(now, window, zone, Activity(own, None), night, zone)
    assert check.startswith("send time:")
    if at is None:  # now: the quiet-hours check that follows defers it if now is quiet
        return
    assert now < at <= max(now + window, night.next_open(now + window, zone))
    assert not night.contains(at, zone)


@settings(max_examples=200, deadline=None)
@given(hour=st.integers(0, 23), days=st.integers(8, 30), now=st.floats(1_790_000_000, 1_800_000_000),
       zone=st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"]))
@example(hour=2, days=8, now=1799999999.9999998, zone="America/New_York")  # now: 02:59:59.9999998 there
def test_a_clear_habit_is_released_at_its_hour_within_a_day(hour: int, days: int, now: float, zone: str) -> None:
    own = b""
    for _ in range(days):
        own = counted(own, hour)
    choice = choose(now, 86_400.0, zone, Activity(own, None))
    assert choice is not None and choice.hour == hour and choice.source == "own"
    local = datetime.fromtimestamp(math.floor(choice.at), ZoneInfo(zone))  # (fromtimestamp rounds to the µs)
    assert now <= choice.at < now + 86_400 and local.hour == hour
    assert choice.at == now or (local.minute, local.second) == (0, 0)


# --- the learned counts --------------------------------------------------------------------------


def test_only_the_first_event_of_an_hour_counts_in_the_customers_local_time() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    runtime.feed(profile("c1", zone="America/New_York"))
    feed(runtime, [page("c1", tokyo(2, 9, m), m) for m in range(0, 60, 5)])  # 12 events, one hour
    state = runtime.state("c1")
    assert state is not None and hours(active_hours.seen(state)) == [0] * 19 + [1] + [0] * 4  # 19:00 in New York
    assert runtime.models is not None and runtime.models.hours.total == 1


def test_counts_halve_when_one_is_full_so_the_profile_follows_new_habits() -> None:
    own = b""
    for _ in range(15):
        own = counted(own, 9)
    for _ in range(20):
        own = counted(own, 18)
    assert hours(own)[9] < hours(own)[18] and len(own) == 12
    assert choose(1_795_998_000.0, 86_400.0, "UTC", Activity(own, None)).hour == 18  # type: ignore[union-attr]


# --- restarts, old states and checkpoints ---------------------------------------------------------

LANES = {"page_view": 0, "feature_used": 0, "profile": 3}


def _stream() -> list[tuple[Record, tuple[int, int, int]]]:
    records: list[Record] = [profile("c1"), profile("c2", zone="Europe/Berlin")]
    for day in range(1, 11):
        records += [page("c1", tokyo(day, 9, 10), day), page("c2", tokyo(day, 3, 20), day)]  # 19:20 in Berlin
    records += [feature("c1", tokyo(11, 15)), feature("c2", tokyo(11, 16))]
    offsets = dict.fromkeys(LANES.values(), 0)
    out = []
    for record in records:
        lane = LANES[record.type]
        out.append((record, (lane, 0, offsets[lane])))
        offsets[lane] += 1
    return out


STREAM = _stream()
END = tokyo(13, 0).timestamp()


class Store:
    """The worker's tables as a crash leaves them (see tests/unit/test_crash_points.py)."""

    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}
        self.profiles: dict[str, dict[str, object]] = {}
        self.models: bytes | None = None

    def flush(self, runtime: PartitionRuntime) -> None:
        dirty = runtime.take_dirty()
        self.profiles.update({c: p.to_dict() for c, p in dirty.profiles.items()})
        self.states.update({c: s.to_bytes() for c, s in dirty.states.items() if isinstance(s, CustomerState)})
        assert runtime.models is not None
        self.models = runtime.models.to_bytes()

    def restart(self) -> PartitionRuntime:
        runtime = PartitionRuntime(
            0, CONFIG, rules(), PartitionModels.restore(self.models, 0),
            load_state=lambda c: CustomerState.from_bytes(self.states[c], CONFIG) if c in self.states else None,
            load_profile=lambda c: ProfileState.from_dict(self.profiles[c]) if c in self.profiles else None)
        runtime.restore(CustomerState.from_bytes(raw, CONFIG) for _, raw in sorted(self.states.items()))
        return runtime


def _run(runtime: PartitionRuntime, records: list[tuple[Record, tuple[int, int, int]]]) -> list[Trigger]:
    return triggers([e for record, position in records for e in runtime.feed(record, position)])


def _undisturbed() -> list[Trigger]:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    return _run(runtime, STREAM) + triggers(runtime.advance(END))


UNDISTURBED = _undisturbed()


def test_the_stream_defers_both_customers_to_their_own_hours() -> None:
    assert [(t.customer_id, t.released_at) for t in UNDISTURBED] == [
        ("c2", tokyo(12, 3)), ("c1", tokyo(12, 9))]  # c2: 19:00 in Berlin


@pytest.mark.parametrize("committed,flushed", [(c, f) for c, f in itertools.combinations(range(len(STREAM) + 1), 2)
                                               if f >= len(STREAM) - 4])
def test_a_crash_while_triggers_wait_still_releases_each_once(committed: int, flushed: int) -> None:
    """States and models are flushed after ``flushed`` records, offsets committed after ``committed``; the
    worker dies, restores every state (the due index is rebuilt from them) and reads again from the commit."""
    store, runtime = Store(), PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    before = _run(runtime, STREAM[:flushed])
    store.flush(runtime)
    restarted = store.restart()
    after = _run(restarted, STREAM[committed:]) + triggers(restarted.advance(END))
    assert before == [] and [t.model_dump() for t in after] == [t.model_dump() for t in UNDISTURBED]


def test_a_state_written_before_send_windows_loads_and_learns_on() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    _run(runtime, STREAM[:10])
    state = runtime.state("c1")
    assert state is not None and active_hours.seen(state)
    items = msgpack.unpackb(state.to_bytes()[1:], raw=False)
    del next(v for v in items[2:] if isinstance(v, dict))["h"]  # what a worker without the slice wrote
    old = state.to_bytes()[:1] + msgpack.packb(items, use_bin_type=True)
    loaded = CustomerState.from_bytes(old, CONFIG)
    assert active_hours.seen(loaded) == b"" and loaded.events == state.events
    assert loaded.to_bytes() == old  # an empty slice is left out: the same bytes as before
    restarted = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0), load_state=lambda _c: None)
    restarted.restore([loaded])
    restarted.feed(profile("c1"))
    restarted.feed(page("c1", tokyo(20, 9), 77))
    assert hours(active_hours.seen(restarted.state("c1")))[9] == 1  # type: ignore[arg-type]
    fixture = CustomerState.from_bytes((REPO / "tests/unit/data/state-v1-busy.bin").read_bytes(), CONFIG)
    assert active_hours.seen(fixture) == b""


def test_a_model_checkpoint_without_population_hours_loads_empty() -> None:
    models = PartitionModels(0)
    for hour in (20,) * 150:
        models.learn_hour(hour)
    header, payload = open_checkpoint(models.to_bytes())
    assert PartitionModels.from_bytes(models.to_bytes()).hours == models.hours
    del payload["hours"]
    header = {k: v for k, v in header.items() if k != "sha256"}
    assert PartitionModels.from_bytes(seal(header, payload)).hours == PopulationHours()
    payload["hours"] = [1] * 23 + [-1]
    assert PartitionModels.restore(seal(header, payload)).problem == (
        "corrupt model checkpoint: population hours are negative")


# --- no send window: today's behaviour -----------------------------------------------------------


def _population(seed: int) -> list[Record]:
    """Twenty customers over three weeks: visits, error bursts, feature uses, profiles in several zones."""
    rng = random.Random(seed)
    records: list[tuple[float, int, Record]] = []
    zones = ["Asia/Tokyo", "Europe/Berlin", "America/New_York", "UTC"]
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    for c in range(20):
        customer = f"k{c}"
        signup = date(2026, 10, rng.randint(1, 31))
        records.append((start, 0, Profile(customer_id=customer, updated_at=datetime(2026, 10, 1, tzinfo=UTC),
                                          timezone=zones[c % 4], signup_date=signup, plan="pro",
                                          quiet_hours="21:00-07:00" if c % 3 == 0 else None)))
        t, n = start + rng.uniform(0, 86_400), 0
        while t < start + 21 * 86_400:
            n += 1
            at = datetime.fromtimestamp(t, UTC)
            kind = rng.random()
            if kind < 0.05:
                records += [(t + i, n, ErrorEvent(event_id=f"{customer}-e{n}-{i}", customer_id=customer, code="E1",
                                                  occurred_at=at + timedelta(seconds=i))) for i in range(6)]
            elif kind < 0.1:
                records.append((t, n, FeatureUsed(event_id=f"{customer}-f{n}", customer_id=customer, occurred_at=at,
                                                  feature=rng.choice(["reports", "export", "onboarding_completed"]))))
            else:
                records.append((t, n, PageView(event_id=f"{customer}-p{n}", customer_id=customer, occurred_at=at)))
            t += rng.expovariate(1 / (6 * 3600)) if c % 5 else rng.expovariate(1 / (4 * 86_400))
    return [r for _, _, r in sorted(records, key=lambda x: (x[0], x[1]))]


@pytest.mark.parametrize("seed", [1, 2])
def test_without_a_send_window_the_shipped_playbooks_decide_exactly_as_without_active_hours(seed: int) -> None:
    """The active-hours detector and the send-window code change nothing for playbooks without a window:
    the same triggers and decisions as an engine whose registry lacks the detector (today's engine)."""
    text = (REPO / "streams/playbooks.yaml").read_text()  # without its shadow example of #16, the last block
    assert "\n  # Issue #16, an example in shadow mode" in text
    shipped = parse_rules(text.split("\n  # Issue #16, an example in shadow mode")[0])
    assert not any(p.send_window for p in shipped.playbooks)
    without = Registry(tuple(d for d in builtin_registry() if d.name != active_hours.NAME))
    runs = []
    for config in (CONFIG, EngineConfig(detectors=without)):
        runtime = PartitionRuntime(0, config, shipped, PartitionModels(0, config=config))
        emissions = feed(runtime, _population(seed)) + runtime.advance(datetime(2026, 11, 25, tzinfo=UTC).timestamp())
        runs.append(([t.model_dump() for t in triggers(emissions)],
                     [(e.customer_id, d) for e in emissions if e.step for d in e.step.decisions]))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) >= 10 and {d.verdict for _, d in runs[0][1]} >= {"sent", "deferred", "released"}


def test_learning_can_be_switched_off_then_states_carry_nothing_and_windows_send_at_once() -> None:
    off = EngineConfig(active_hours_learn=False)
    runtime = PartitionRuntime(0, off, rules(), PartitionModels(0, config=off))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))
    state = runtime.state("c1")
    assert state is not None and active_hours.seen(state) == b"" and runtime.models.hours.total == 0  # type: ignore[union-attr]
    assert b"\xa1h" not in state.to_bytes()  # no slice key "h" in the changelog value
    sent = triggers(runtime.feed(feature("c1", tokyo(11, 15))))
    assert len(sent) == 1 and send_time_check(sent[0]) == "send time: now (within 24h; no activity profile yet)"


def test_the_learned_wall_hour_holds_across_a_dst_change() -> None:
    york = ZoneInfo("America/New_York")
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    runtime.feed(profile("c1", zone="America/New_York"))
    feed(runtime, [page("c1", datetime(2026, 10, day, 9, 10, tzinfo=york), day) for day in range(20, 31)])
    feed(runtime, [feature("c1", datetime(2026, 10, 31, 15, tzinfo=york))])  # clocks fall back that night
    released = triggers(runtime.advance(datetime(2026, 11, 2, tzinfo=york).timestamp()))
    assert [t.released_at for t in released] == [datetime(2026, 11, 1, 9, tzinfo=york)]  # 09:00 EST, not 08:00
    assert released[0].released_at.astimezone(york).utcoffset() == timedelta(hours=-5)  # type: ignore[union-attr]


def test_a_fallback_after_a_failed_delivery_goes_at_once() -> None:
    runtime = PartitionRuntime(0, CONFIG, rules(), PartitionModels(0))
    runtime.feed(profile("c1"))
    feed(runtime, habit("c1", 9, range(1, 11)))
    feed(runtime, [feature("c1", tokyo(11, 15))])
    [tip] = triggers(runtime.advance(tokyo(12, 9).timestamp()))
    failed = Outcome(outcome_id="o1", trigger_id=tip.trigger_id, customer_id="c1", channel="in_app", status="failed",
                     occurred_at=tokyo(12, 9, 5))
    [fallback] = triggers(runtime.feed(failed))
    assert fallback.channel == "email" and fallback.fallback_of == tip.trigger_id
    assert fallback.why is not None and not any(c.startswith("send time:") for c in fallback.why.checks)
