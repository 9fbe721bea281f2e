"""EventClock (the timers' notion of now), EngineConfig validation and runtime Settings."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from forethought.contracts.events import PageView
from forethought.core.clock import EventClock
from forethought.core.config import EngineConfig
from forethought.core.engine import process, tick
from forethought.ops.settings import Settings

WALL = 1_800_000_000.0  # "today" on the wall clock
OLD = 1_600_000_000.0  # event times from years ago (a backfill)


# ---- EventClock --------------------------------------------------------------------------------


def test_before_any_event_now_is_the_wall_clock() -> None:
    assert EventClock(idle_grace=10).now(wall=WALL) == WALL


def test_now_holds_at_the_newest_event_during_the_idle_grace() -> None:
    clock = EventClock(idle_grace=10)
    clock.observe(event_time=OLD, wall=WALL)
    assert clock.now(wall=WALL) == OLD
    assert clock.now(wall=WALL + 10) == OLD


def test_after_the_grace_now_advances_at_the_wall_clock_pace() -> None:
    clock = EventClock(idle_grace=10)
    clock.observe(event_time=OLD, wall=WALL)
    assert clock.now(wall=WALL + 15) == OLD + 5
    assert clock.now(wall=WALL + 3610) == OLD + 3600


def test_an_older_event_does_not_move_now_back_but_shows_input_is_flowing() -> None:
    clock = EventClock(idle_grace=10)
    clock.observe(event_time=OLD + 500, wall=WALL)
    clock.observe(event_time=OLD, wall=WALL + 100)  # out of order, 100 s later
    assert clock.now(wall=WALL + 100) == OLD + 500
    assert clock.now(wall=WALL + 115) == OLD + 505  # idle counted from the last arrival


def test_backfill_is_not_mistaken_for_silence() -> None:
    """Replaying a year-old hour of activity quickly must not fire drop-offs for it."""
    config = EngineConfig(visit_gap_seconds=0, silence_min_seconds=60)
    clock = EventClock(idle_grace=10)
    state = None
    for i in range(60):  # one event per event-minute, arriving one per wall-second
        event_time, wall = OLD + 60 * i, WALL + i
        event = PageView(event_id=f"b{i}", customer_id="c1",
                         occurred_at=datetime.fromtimestamp(event_time, tz=timezone.utc))
        state = process(state, event, config).state
        clock.observe(event.epoch, wall)
        step = tick(state, clock.now(wall), config)
        assert (step.state, step.triggers, step.observations) == (state, (), ())  # not evicted either
    assert state.slice("silence").deadline is not None
    # by the wall clock the customer has been silent for years; by event time for seconds
    step = tick(state, clock.now(WALL + 60), config)
    assert (step.state, step.triggers, step.observations) == (state, (), ())
    assert clock.now(WALL + 60) - state.last_seen < 60


def test_when_all_input_stops_silence_is_still_noticed() -> None:
    config = EngineConfig(visit_gap_seconds=0, silence_min_seconds=60)
    clock = EventClock(idle_grace=10)
    state = None
    for i in range(30):
        event = PageView(event_id=f"s{i}", customer_id="c1",
                         occurred_at=datetime.fromtimestamp(OLD + 60 * i, tz=timezone.utc))
        state = process(state, event, config).state
        clock.observe(event.epoch, WALL + 60 * i)
    last_wall = WALL + 60 * 29
    wait = state.slice("silence").deadline - state.last_seen
    assert tick(state, clock.now(last_wall + wait), config).triggers == ()  # grace not yet used up
    assert len(tick(state, clock.now(last_wall + wait + 10), config).triggers) == 1


# ---- EngineConfig ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bucket_seconds", 0, "bucket_seconds must be > 0, got 0"),
        ("ring_buckets", -3, "ring_buckets must be > 0, got -3"),
        ("silence_z", 0.0, "silence_z must be > 0"),
        ("burst_min_errors", -1, "burst_min_errors must be > 0"),
        ("idle_ttl_seconds", 0, "idle_ttl_seconds must be > 0"),
        ("allowed_lateness_seconds", -1.0, "allowed_lateness_seconds must be >= 0, got -1.0"),
        ("visit_gap_seconds", -5, "visit_gap_seconds must be >= 0"),
        ("gap_alpha", 1.5, "gap_alpha"),
        ("burst_alpha", 2.0, "burst_alpha"),
        ("silence_min_seconds", 100 * 86_400.0, "silence_min_seconds must be <= silence_max_seconds"),
    ],
)
def test_engine_config_rejects_bad_values_naming_the_field(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        EngineConfig(**{field: value})


@pytest.mark.parametrize("field", ["allowed_lateness_seconds", "max_future_seconds", "visit_gap_seconds"])
def test_engine_config_allows_zero_where_zero_means_off(field: str) -> None:
    assert getattr(EngineConfig(**{field: 0}), field) == 0


def test_engine_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        EngineConfig().burst_z = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("field", ["silence_z", "burst_z", "bucket_seconds", "prior_gap_seconds"])
def test_engine_config_rejects_nan(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        EngineConfig(**{field: math.nan})


# ---- Settings ----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("FORETHOUGHT_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("bootstrap", ["nohostport", "broker:", ":9092", "a:9092,b", "host:port"])
def test_settings_reject_a_bad_bootstrap_naming_the_field(
    clean_env: pytest.MonkeyPatch, bootstrap: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(kafka_bootstrap=bootstrap)
    assert "kafka_bootstrap" in str(info.value)
    assert "host:port" in str(info.value)


def test_settings_accept_a_broker_list(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings(kafka_bootstrap="k1:9092, k2:9093").kafka_bootstrap == "k1:9092, k2:9093"


def test_settings_bad_bootstrap_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", "nohostport")
    with pytest.raises(ValidationError, match="kafka_bootstrap"):
        Settings()


def test_settings_read_a_nested_engine_value_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FORETHOUGHT_ENGINE__BURST_Z", "6.5")
    settings = Settings()
    assert settings.engine.burst_z == 6.5
    assert settings.engine.burst_min_errors == EngineConfig().burst_min_errors  # others keep defaults


def test_settings_reject_a_bad_engine_value_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FORETHOUGHT_ENGINE__BURST_Z", "-1")
    with pytest.raises(ValidationError, match="burst_z must be > 0"):
        Settings()


def test_settings_defaults_without_environment(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.engine == EngineConfig()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
