"""The synthetic population: valid, sorted, reproducible records whose ground truth holds."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from forethought.cli import app
from forethought.contracts.decode import Rejection, decode_event
from forethought.contracts.records import CONTROL_ADAPTER
from forethought.simulate.population import SimulationConfig, read_lines, simulate, truth, write
from forethought.simulate.sinks import routes

DAY = 86_400.0
SMALL = SimulationConfig(customers=50, days=14, seed=3, churn_rate=0.3, anomaly_rate=0.3, new_signup_rate=0.3)
MEDIUM = SimulationConfig(customers=600, days=60, seed=11, churn_rate=0.4, anomaly_rate=0.3, new_signup_rate=0.2)


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def record_time(record: dict[str, Any]) -> float:
    return ts(record["occurred_at"] if "occurred_at" in record else record["updated_at"])


def is_visit(record: dict[str, Any]) -> bool:
    return record["type"] == "session_start" or (record["type"] == "usage" and "session_id" not in record)


class Run:
    """A population written to disk and read back, grouped by customer."""

    def __init__(self, records: list[dict[str, Any]], truths: list[dict[str, Any]]) -> None:
        self.records = records
        self.truth = {row["customer_id"]: row for row in truths}
        self.events: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        for record in records:
            if record["type"] != "profile":
                self.events[record["customer_id"]].append((ts(record["occurred_at"]), record))

    def visits(self, customer_id: str) -> list[float]:
        return [t for t, r in self.events[customer_id] if is_visit(r)]


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("sim")
    write(MEDIUM, folder / "events.jsonl.gz", folder / "truth.jsonl")
    return Run(list(read_lines(folder / "events.jsonl.gz")), list(read_lines(folder / "truth.jsonl")))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(SMALL, tmp_path / f"{name}.jsonl.gz", tmp_path / f"{name}.truth.jsonl")
    write(SMALL.model_copy(update={"seed": 4}), tmp_path / "c.jsonl.gz", tmp_path / "c.truth.jsonl")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert (tmp_path / "a.truth.jsonl").read_bytes() == (tmp_path / "b.truth.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl.gz").read_bytes() != (tmp_path / "c.jsonl.gz").read_bytes()
    assert list(read_lines(tmp_path / "a.jsonl.gz")) == list(simulate(SMALL))
    assert list(read_lines(tmp_path / "a.truth.jsonl")) == list(truth(SMALL))


def test_every_record_is_valid_and_ids_are_unique() -> None:
    records = list(simulate(SMALL))
    kinds = set()
    for record in records:
        if record["type"] == "profile":
            CONTROL_ADAPTER.validate_python(record)
        else:
            event = decode_event(orjson.dumps(record))
            assert not isinstance(event, Rejection), (event, record)
        kinds.add(record["type"])
    assert kinds == {"profile", "page_view", "click", "session_start", "session_end", "feature_used", "error", "usage"}
    ids = [r["event_id"] for r in records if r["type"] != "profile"]
    assert len(ids) == len(set(ids))


def test_sorted_by_event_time_and_profile_first(medium: Run) -> None:
    times = [record_time(r) for r in medium.records]
    assert times == sorted(times)
    seen: set[str] = set()
    for record in medium.records:
        if record["type"] == "profile":
            seen.add(record["customer_id"])
        assert record["customer_id"] in seen, "an event came before its customer's profile"
    assert len(seen) == MEDIUM.customers


def test_profiles_carry_plan_timezone_consent_and_dates(medium: Run) -> None:
    profiles = {r["customer_id"]: r for r in medium.records if r["type"] == "profile"}
    for cid, row in medium.truth.items():
        profile = profiles[cid]
        assert (profile["plan"], profile["timezone"]) == (row["plan"], row["timezone"])
        assert profile["signup_date"] == row["signup_at"][:10] and set(profile["consent"]) >= {"email", "in_app"}
        assert (profile["renewal_date"] is None) == (profile["plan"] == "free")
        if row["new_signup"]:
            assert profile["updated_at"] == row["signup_at"]
            assert all(t >= ts(row["signup_at"]) for t, _ in medium.events[cid])


def test_truth_matches_the_events(medium: Run) -> None:
    churners = 0
    for cid, row in medium.truth.items():
        times = [t for t, _ in medium.events[cid]]
        last = max(times, default=None)
        assert row["last_activity_at"] == (None if last is None else medium.events[cid][-1][1]["occurred_at"])
        if row["dropoff_at"] is not None:
            churners += 1
            assert last is None or last < ts(row["dropoff_at"])
        else:
            assert row["precursors"] == []
    assert 0.3 < churners / MEDIUM.customers < 0.5  # churn_rate 0.4


def test_injected_anomalies_are_in_the_events(medium: Run) -> None:
    kinds: dict[str, int] = defaultdict(int)
    drops: list[float] = []
    for cid, row in medium.truth.items():
        for anomaly in row["anomalies"]:
            kinds[anomaly["kind"]] += 1
            start, end = ts(anomaly["start"]), ts(anomaly["end"])
            events = medium.events[cid]
            if anomaly["kind"] == "error_burst":
                burst = [t for t, r in events
                         if r["type"] == "error" and r["code"] == anomaly["code"] and start <= t <= end]
                assert len(burst) >= 10 and end - start <= 300
                continue
            inside = [r["quantity"] for t, r in events if r["type"] == "usage" and start <= t <= end]
            outside = [r["quantity"] for t, r in events if r["type"] == "usage" and not start <= t <= end]
            if anomaly["kind"] == "usage_spike":
                assert len(inside) >= 5  # extra usage every few minutes
            if len(outside) < 3:
                continue
            if anomaly["kind"] == "usage_spike":
                assert statistics.median(inside) > 3 * statistics.median(outside)
            elif inside:
                drops.append(statistics.median(inside) / statistics.median(outside))
    assert set(kinds) == {"error_burst", "usage_spike", "usage_drop"}
    assert len(drops) >= 5 and statistics.median(drops) < 0.3  # quantities drop to 2-15 %
    assert 0.15 < sum(kinds.values()) / MEDIUM.customers < 0.35  # anomaly_rate 0.3


def test_cadences_span_minutes_to_weeks_and_match_the_truth(medium: Run) -> None:
    observed = {}
    for cid, row in medium.truth.items():
        visits = medium.visits(cid)
        if len(visits) >= 3:
            observed[cid] = (visits[-1] - visits[0]) / (len(visits) - 1)
    assert min(observed.values()) < 3600 and max(observed.values()) > 7 * DAY
    ratios = [observed[cid] / row["cadence_seconds"] for cid, row in medium.truth.items()
              if cid in observed and len(medium.visits(cid)) >= 10 and row["dropoff_at"] is None]
    assert 0.8 < statistics.median(ratios) < 1.2  # cadence_seconds is the mean gap between visits
    by_plan = defaultdict(list)
    for row in medium.truth.values():
        if row["segment"] == "daily":
            by_plan[row["plan"]].append(row["cadence_seconds"])
    assert statistics.mean(by_plan["enterprise"]) < statistics.mean(by_plan["free"])


def test_precursor_customers_decline_before_dropping_off(medium: Run) -> None:
    ratios: dict[bool, list[tuple[int, int]]] = defaultdict(list)
    for cid, row in medium.truth.items():
        if row["dropoff_at"] is None or row["new_signup"]:
            continue
        if ts(row["dropoff_at"]) - MEDIUM.start.timestamp() < 28 * DAY:
            continue
        d = ts(row["dropoff_at"])
        visits = medium.visits(cid)
        before = sum(d - 28 * DAY <= t < d - 14 * DAY for t in visits)
        last = sum(d - 14 * DAY <= t < d for t in visits)
        if before + last >= 4:
            ratios["declining_activity" in row["precursors"]].append((before, last))
    decline = sum(b for _, b in ratios[True]) / sum(a for a, _ in ratios[True])
    abrupt = sum(b for _, b in ratios[False]) / sum(a for a, _ in ratios[False])
    assert len(ratios[True]) >= 20 and decline < 0.8 and decline < abrupt


def test_precursor_errors_rise(medium: Run) -> None:
    counts = defaultdict(int)  # (window, is_error) -> events, pooled over customers
    for cid, row in medium.truth.items():
        if "rising_errors" in row["precursors"] and not row["anomalies"]:
            begin, end = ts(row["precursors_from"]), ts(row["dropoff_at"])
            for t, r in medium.events[cid]:
                window = "before" if begin - 14 * DAY <= t < begin else "late" if (begin + end) / 2 <= t < end else None
                counts[window, r["type"] == "error"] += 1
    rate = {w: counts[w, True] / counts[w, False] for w in ("before", "late")}
    assert counts["late", True] >= 10 and rate["late"] > 2 * rate["before"]


def test_new_signups_onboard_and_stalled_ones_never_finish(medium: Run) -> None:
    stalled = completed = 0
    for cid, row in medium.truth.items():
        if not row["new_signup"] or not medium.events[cid] or row["segment"] == "integration":
            continue
        features = [r["feature"] for _, r in medium.events[cid] if r["type"] == "feature_used"]
        steps = [f for f in features if f.startswith("onboarding_step_")]
        assert steps and steps[0] == "onboarding_step_1"
        if "stalled_onboarding" in row["precursors"]:
            stalled += 1
            assert "onboarding_step_5" not in steps and "reports" not in features and "checkout" not in features
        completed += "onboarding_step_5" in steps
    assert stalled >= 3 and completed >= 10


def test_daily_users_are_active_in_their_local_daytime_and_on_weekdays(medium: Run) -> None:
    daytime = weekday = total = 0
    for cid, row in medium.truth.items():
        if row["segment"] != "daily":
            continue
        zone = ZoneInfo(row["timezone"])
        for t, _ in medium.events[cid]:
            local = datetime.fromtimestamp(t, zone)
            total += 1
            daytime += 8 <= local.hour < 20
            weekday += local.weekday() < 5
    assert daytime / total > 0.8
    assert (weekday / 5) > 2 * ((total - weekday) / 2)  # per day, weekdays busier than weekends
    zones = {row["timezone"] for row in medium.truth.values()}
    assert {"America/New_York", "Europe/Berlin", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney", "UTC"} <= zones


def test_bad_config_names_the_field() -> None:
    for field, value in (("customers", 0), ("days", -1), ("churn_rate", 1.5), ("start", "yesterday")):
        with pytest.raises(ValidationError, match=field):
            SimulationConfig(**{field: value})
    assert SimulationConfig(start="2026-01-05").start.utcoffset().total_seconds() == 0


def test_cli_writes_files_and_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    out, truth_file = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    result = runner.invoke(app, ["simulate", "--customers", "20", "--days", "3", "--seed", "5", "--start",
                                 "2026-03-02T00:00:00Z", "--output", str(out), "--truth", str(truth_file)])
    assert result.exit_code == 0, result.output
    assert "events" in result.output and len(truth_file.read_text().splitlines()) == 20
    assert out.read_text().splitlines()[0].startswith('{"type":"profile"')
    bad = runner.invoke(app, ["simulate", "--churn-rate", "2", "--output", str(out)])
    assert bad.exit_code == 2 and "--churn-rate" in bad.output


def test_kafka_routes_follow_the_catalogue() -> None:
    from forethought.ops.topics import load_catalogue

    table = routes(load_catalogue(), lambda name: name)
    assert table["profile"] == "customers.profile" and table["usage"] == "events.usage"
    assert {table[k] for k in ("page_view", "click", "session_start", "session_end", "feature_used")} == {
        "events.clickstream"}


@pytest.mark.parametrize("name", ["timeline", "plans", "behaviour", "population", "sinks"])
def test_docstring_examples_run(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(f"forethought.simulate.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
