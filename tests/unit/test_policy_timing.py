"""Quiet hours across time zones and DST, rolling caps, and deterministic holdouts.

Quiet hours are checked against properties that define "the first instant the window is
open" (it is not quiet, it is not before the request, and nothing quiet-free was skipped),
sampled over 2020-2030 with extra weight on the days clocks change; caps against a greedy
sender and a brute-force sliding window; holdouts against hashlib directly and the shares
a user would measure.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.core.policy.timing import (
    QuietHours,
    cap_allows,
    count_since,
    in_holdout,
    prune,
    unit_hash,
)

HOUR = 3600
DAY = 24 * HOUR
ZONES = [
    "Asia/Tokyo", "America/New_York", "Europe/London", "Australia/Lord_Howe",
    "America/St_Johns", "Pacific/Kiritimati", "Europe/Berlin", "UTC",
]
FROM = int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
UNTIL = int(dt.datetime(2031, 1, 1, tzinfo=dt.UTC).timestamp())
FAST = settings(max_examples=400, deadline=None)
SLOW = settings(max_examples=300, deadline=None)


def utc(*fields: int) -> float:
    return dt.datetime(*fields, tzinfo=dt.UTC).timestamp()


def offset(at: int, tz: str) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(at, ZoneInfo(tz)).utcoffset()


@cache
def transitions(tz: str) -> list[int]:
    """Every UTC-offset change of ``tz`` in 2020-2030, to the second (daily probe + bisect)."""
    found: list[int] = []
    for day in range(FROM, UNTIL, DAY):
        before = offset(day, tz)
        if offset(day + DAY, tz) != before:
            seconds = range(day + 1, day + DAY + 1)
            first = bisect.bisect_left(seconds, True, key=lambda s: offset(s, tz) != before)
            found.append(seconds[first])
    return found


def test_the_sampled_zones_really_change_clocks() -> None:
    """The DST-heavy part of the sample is not empty: 11 years of two changes a year."""
    assert len(transitions("America/New_York")) == 22
    assert len(transitions("Australia/Lord_Howe")) == 22
    assert transitions("Asia/Tokyo") == transitions("Pacific/Kiritimati") == []


minutes = st.one_of(st.integers(0, 1439), st.integers(0, 210))  # extra weight on 00:00-03:30
windows = st.builds(
    lambda a, b: QuietHours(dt.time(a // 60, a % 60), dt.time(b // 60, b % 60)), minutes, minutes
)


def wall_minute(at: int, tz: str) -> int:
    local = dt.datetime.fromtimestamp(at, ZoneInfo(tz))
    return local.hour * 60 + local.minute


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[QuietHours, str, float]:
    """A window, a zone and an instant: anywhere in 2020-2030, or within a day of a clock change
    (then, half of the time, with the window's ends within 90 minutes of the change's wall time)."""
    tz = draw(st.sampled_from(ZONES))
    near, window = transitions(tz), draw(windows)
    if near and draw(st.booleans()):
        change = draw(st.sampled_from(near))
        at: float = change + draw(st.integers(-26 * HOUR, 26 * HOUR))
        if draw(st.booleans()):
            wall = wall_minute(change - 1, tz)
            start, end = ((wall + draw(st.integers(-90, 90))) % 1440 for _ in "se")
            window = QuietHours(dt.time(start // 60, start % 60), dt.time(end // 60, end % 60))
    else:
        at = draw(st.integers(FROM, UNTIL))
    return window, tz, at + draw(st.sampled_from([0.0, 0.25, 0.999]))


def open_span_minutes(window: QuietHours) -> int:
    """Minutes of wall time per day that are not quiet."""
    start, end = (t.hour * 60 + t.minute for t in (window.start, window.end))
    return (start - end) % 1440


# --- quiet hours: properties ---------------------------------------------------------------


@FAST
@given(scenarios())
def test_next_open_is_an_open_instant_not_before_the_request(
    case: tuple[QuietHours, str, float],
) -> None:
    window, tz, at = case
    opens = window.next_open(at, tz)
    assert opens >= at
    assert not window.contains(opens, tz)
    if not window.contains(at, tz):
        assert opens == at


@SLOW
@given(scenarios())
def test_everything_before_next_open_is_quiet(case: tuple[QuietHours, str, float]) -> None:
    """No open minute is skipped, checked every 60 s and one second before the opening."""
    window, tz, at = case
    opens = window.next_open(at, tz)
    # a day of quiet plus an hour of fall-back; two days only if the open span fits in a DST gap
    assert opens - at <= (25 if open_span_minutes(window) > 60 else 49) * HOUR
    probes = [at + k * 60 for k in range(1, int((opens - at) // 60) + 1)] + [opens - 1]
    for probe in probes:
        if at < probe < opens:
            local = dt.datetime.fromtimestamp(probe, ZoneInfo(tz))
            assert window.contains(probe, tz), f"open at {local.isoformat()} before {opens}"


@FAST
@given(windows, st.sampled_from(ZONES), st.integers(FROM, UNTIL))
def test_an_empty_window_is_never_quiet(window: QuietHours, tz: str, at: int) -> None:
    empty = QuietHours(window.start, window.start)
    assert not empty.contains(at, tz)
    assert empty.next_open(at, tz) == at


# --- quiet hours: concrete days ------------------------------------------------------------


def test_tokyo_night_opens_at_eight_the_next_morning() -> None:
    night = QuietHours.parse("22:00-08:00")
    at = utc(2026, 5, 1, 14)  # 23:00 JST
    assert night.contains(at, "Asia/Tokyo")
    assert night.next_open(at, "Asia/Tokyo") == 1777676400.0 == utc(2026, 5, 1, 23)  # 08:00 JST
    assert night.next_open(utc(2026, 5, 1, 12), "Asia/Tokyo") == utc(2026, 5, 1, 12)  # 21:00: open


def test_new_york_spring_forward_opens_at_the_transition_when_end_is_skipped() -> None:
    """2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC), so 02:30 never happens."""
    window, tz = QuietHours.parse("01:00-02:30"), "America/New_York"
    assert window.next_open(utc(2026, 3, 8, 6, 30), tz) == 1772953200.0 == utc(2026, 3, 8, 7)
    assert window.contains(utc(2026, 3, 8, 6, 59, 59), tz)  # 01:59:59 EST
    assert not window.contains(utc(2026, 3, 8, 5, 59), tz)  # 00:59 EST
    # a day later the end exists again: 02:30 EDT
    assert window.next_open(utc(2026, 3, 9, 5, 30), tz) == utc(2026, 3, 9, 6, 30)


def test_new_york_window_whose_open_span_falls_in_the_gap_stays_shut_a_day() -> None:
    """Quiet except 02:30-02:45: on 2026-03-08 that span is skipped, so it opens 03-09 02:30."""
    window, tz = QuietHours.parse("02:45-02:30"), "America/New_York"
    assert window.next_open(utc(2026, 3, 8, 6), tz) == utc(2026, 3, 9, 6, 30)


def test_london_fall_back_opens_at_the_first_end_and_repeated_times_are_quiet_again() -> None:
    """2026-10-25: 02:00 BST falls back to 01:00 GMT (01:00 UTC); 01:30 happens twice."""
    window, tz = QuietHours.parse("00:00-01:30"), "Europe/London"
    first_0130, second_0130 = utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)
    assert window.next_open(utc(2026, 10, 24, 23, 15), tz) == first_0130  # from 00:15 BST
    assert not window.contains(utc(2026, 10, 25, 0, 45), tz)  # 01:45 BST: open
    assert window.contains(utc(2026, 10, 25, 1, 10), tz)  # 01:10 GMT: wall time is quiet again
    assert window.next_open(utc(2026, 10, 25, 1, 10), tz) == second_0130


def test_london_fall_back_out_of_the_window_opens_at_the_transition() -> None:
    """Quiet 01:30-02:00: at 02:00 BST the clock reads 01:00 GMT, which is open."""
    window, tz = QuietHours.parse("01:30-02:00"), "Europe/London"
    assert window.next_open(utc(2026, 10, 25, 0, 45), tz) == utc(2026, 10, 25, 1)


def test_lord_howe_half_hour_shift() -> None:
    """2026-04-05: 02:00 (+11) falls back to 01:30 (+10:30), so 01:45 happens twice."""
    window, tz = QuietHours.parse("23:00-01:45"), "Australia/Lord_Howe"
    first = utc(2026, 4, 4, 14, 45)  # 01:45 (+11)
    assert window.next_open(utc(2026, 4, 4, 13), tz) == first  # from 00:00 (+11)
    assert not window.contains(utc(2026, 4, 4, 14, 50), tz)  # 01:50 (+11): open
    again = utc(2026, 4, 4, 15, 10)  # 01:40 (+10:30): quiet again for five minutes
    assert window.contains(again, tz)
    assert window.next_open(again, tz) == first + 1800  # 01:45 (+10:30)


# --- parsing ---------------------------------------------------------------------------------


@given(st.integers(0, 1439), st.integers(0, 1439))
def test_parse_reads_what_is_written(a: int, b: int) -> None:
    window = QuietHours.parse(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}")
    assert (window.start, window.end) == (dt.time(a // 60, a % 60), dt.time(b // 60, b % 60))


def test_parse_tolerates_spaces() -> None:
    assert QuietHours.parse(" 22:00 - 08:00 ") == QuietHours(dt.time(22), dt.time(8))


@pytest.mark.parametrize(
    "text", ["", "22:00", "22:00-", "24:00-08:00", "22:60-08:00", "22-08", "2:00-08:00",
             "ab:cd-08:00", "22:00-08:00-09:00", "22.00-08.00", "-1:00-08:00"],
)
def test_parse_rejects_malformed_text_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse(text)


# --- rolling caps -----------------------------------------------------------------------------


def busiest_window(sends: list[float], window: float) -> int:
    """Most sends in any ``(t - window, t]``, by brute force."""
    return max((sum(1 for u in sends if t - window < u <= t) for t in sends), default=0)


@FAST
@given(
    requests=st.lists(st.integers(0, 5000), max_size=60).map(sorted),
    limit=st.integers(1, 4),
    window=st.integers(1, 1500),
)
def test_greedy_sender_respects_the_cap_and_refuses_only_when_it_must(
    requests: list[int], limit: int, window: int
) -> None:
    sent: list[float] = []
    for t in map(float, requests):
        if cap_allows(sent, t, limit, float(window)):
            sent.append(t)
        else:
            assert busiest_window([*sent, t], window) > limit, f"refused {t} needlessly"
    assert busiest_window(sent, window) <= limit


def test_a_send_exactly_one_window_ago_no_longer_counts() -> None:
    sends = [0.0, 100.0]  # "2 per day"
    assert not cap_allows(sends, DAY - 1.0, limit=2, window=DAY)
    assert cap_allows(sends, float(DAY), limit=2, window=DAY)
    assert not cap_allows([5.0], 65.0 - 1e-6, limit=1, window=60.0)  # cooldown of 60 s
    assert cap_allows([5.0], 65.0, limit=1, window=60.0)


@FAST
@given(st.lists(st.integers(-50, 50)).map(sorted), st.integers(-60, 60))
def test_count_since_counts_strictly_later_times(times: list[int], since: int) -> None:
    assert count_since([float(t) for t in times], float(since)) == sum(t > since for t in times)


@FAST
@given(
    times=st.lists(st.integers(0, 1000), max_size=40).map(sorted),
    now=st.integers(0, 1200),
    later=st.integers(0, 500),
    window=st.integers(1, 300),
    slack=st.integers(0, 300),
    limit=st.integers(1, 5),
)
def test_pruning_never_changes_a_cap_decision(
    times: list[int], now: int, later: int, window: int, slack: int, limit: int
) -> None:
    history = [float(t) for t in times]
    kept = prune(history, float(now), keep=float(window + slack))
    assert history == [float(t) for t in times]  # input untouched
    assert kept == [t for t in history if t > now - (window + slack)]
    at = float(now + later)
    assert cap_allows(kept, at, limit, window) == cap_allows(history, at, limit, window)


def test_pruning_drops_what_no_cap_can_count_any_more() -> None:
    """Sends at or before ``now - keep`` are gone; the boundary one is no longer counted."""
    history = [0.0, 100.0, 200.0]
    assert prune(history, now=1100.0, keep=1000.0) == [200.0]
    assert prune(history, now=1099.0, keep=1000.0) == [100.0, 200.0]
    assert history == [0.0, 100.0, 200.0]


# --- holdouts --------------------------------------------------------------------------------

IDS = [f"cust-{i}" for i in range(10_000)]


def reference_hash(*parts: str) -> float:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2**53


@pytest.mark.parametrize(
    ("parts", "known"),
    [(("exp-1", "cust-42"), 0.8982215492796927), (("welcome-2026", "c-0001"), 0.4422673758835187)],
)
def test_unit_hash_is_a_fixed_function_of_its_parts(parts: tuple[str, str], known: float) -> None:
    """Pinned values: a change here would reshuffle every running experiment."""
    assert unit_hash(*parts) == known == reference_hash(*parts)


def test_parts_are_kept_apart() -> None:
    assert unit_hash("exp1", "23") != unit_hash("exp12", "3") != unit_hash("exp123")


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_holdout_takes_the_requested_share(share: float) -> None:
    held = sum(in_holdout(c, "exp-1", share) for c in IDS) / len(IDS)
    assert abs(held - share) <= 0.02


def test_different_salts_give_independent_holdouts() -> None:
    both = sum(in_holdout(c, "exp-a", 0.5) and in_holdout(c, "exp-b", 0.5) for c in IDS)
    assert abs(both / len(IDS) - 0.25) <= 0.03


def test_growing_the_share_keeps_everyone_already_held() -> None:
    small = {c for c in IDS if in_holdout(c, "exp-1", 0.1)}
    large = {c for c in IDS if in_holdout(c, "exp-1", 0.2)}
    assert small < large


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.text(max_size=20), st.floats(0, 1), st.floats(0, 1))
def test_holdout_is_monotonic_and_bounded(customer: str, salt: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= unit_hash(salt, customer) < 1.0
    assert not in_holdout(customer, salt, 0.0) and in_holdout(customer, salt, 1.0)
    assert not in_holdout(customer, salt, low) or in_holdout(customer, salt, high)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_holdout_share_outside_unit_interval_is_rejected(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        in_holdout("cust-1", "exp-1", share)
