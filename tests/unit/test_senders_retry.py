"""Backoff with full jitter, the retry loop, and the per-host token bucket (time injected, no sleeping)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forethought.senders.retry import Attempt, HostRateLimiter, RetryPolicy, TokenBucket, with_retries


@given(st.integers(1, 30), st.floats(0.0, 5.0), st.floats(0.0, 120.0), st.integers(0, 2**32))
def test_each_delay_lies_between_zero_and_the_capped_exponential(n: int, base: float, cap: float, seed: int) -> None:
    policy = RetryPolicy(max_attempts=31, base_seconds=base, max_seconds=max(cap, base))
    delay = policy.delay(n, random.Random(seed))
    assert 0.0 <= delay <= min(policy.max_seconds, base * 2 ** (n - 1))


def test_ceilings_double_until_the_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base_seconds=0.5, max_seconds=5.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_spreads_delays_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [RetryPolicy(base_seconds=1.0, max_seconds=8.0).delay(4, rng) for _ in range(2000)]
    assert min(delays) < 0.5 and max(delays) > 7.5  # full jitter, not "ceiling ± a little"
    assert 3.5 < sum(delays) / len(delays) < 4.5


class Script:
    """An attempt function that answers from a script and records the waits it was given."""

    def __init__(self, *kinds: str, retry_after: float | None = None) -> None:
        self.kinds, self.calls, self.waits, self.retry_after = list(kinds), 0, [], retry_after

    async def attempt(self) -> Attempt:
        self.calls += 1
        return Attempt(self.kinds.pop(0), f"try {self.calls}", retry_after=self.retry_after)  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_transient_failures_are_retried_until_success() -> None:
    script = Script("transient", "transient", "ok")
    done = await with_retries(script.attempt, RetryPolicy(5, 1.0, 10.0), script.sleep, random.Random(1))
    assert (done.last.kind, done.attempts, done.retries) == ("ok", 3, 2)
    assert len(script.waits) == 2 and 0 <= script.waits[0] <= 1.0 and 0 <= script.waits[1] <= 2.0


async def test_a_permanent_failure_is_not_retried() -> None:
    script = Script("permanent", "ok")
    done = await with_retries(script.attempt, RetryPolicy(5), script.sleep)
    assert (done.last.kind, done.attempts, script.waits) == ("permanent", 1, [])


async def test_retries_stop_at_max_attempts() -> None:
    script = Script(*["transient"] * 10)
    done = await with_retries(script.attempt, RetryPolicy(3, 0.0, 0.0), script.sleep)
    assert (done.last.kind, done.attempts, script.calls, len(script.waits)) == ("transient", 3, 3, 2)


async def test_a_servers_retry_after_is_honoured_up_to_the_cap() -> None:
    script = Script("transient", "transient", "ok", retry_after=4.0)
    await with_retries(script.attempt, RetryPolicy(5, 0.1, 3.0), script.sleep, random.Random(1))
    assert script.waits == [3.0, 3.0]


def test_a_bucket_allows_its_burst_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=2, now=100.0)
    assert [bucket.reserve(100.0) for _ in range(4)] == [0.0, 0.0, 0.25, 0.5]


def test_a_bucket_refills_with_time_but_never_beyond_its_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve(1.0) == 0.0  # one token came back after a second
    assert bucket.reserve(1.0) == pytest.approx(1.0)
    idle = TokenBucket(rate=1.0, burst=3, now=0.0)
    assert [idle.reserve(1000.0) for _ in range(4)][-1] == pytest.approx(1.0)  # a long idle banks 3, not 1000


@given(st.floats(0.5, 100.0), st.integers(1, 10), st.integers(1, 200))
def test_over_any_span_a_bucket_admits_at_most_burst_plus_rate_times_span(rate: float, burst: int, n: int) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    finish = max(bucket.reserve(0.0) for _ in range(n))  # n requests at once: when does the last one go?
    assert n <= burst + rate * finish + 1e-6


async def test_the_limiter_keeps_one_bucket_per_host() -> None:
    clock, waits = [0.0], []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    limiter = HostRateLimiter(rate=2.0, burst=1, clock=lambda: clock[0], sleep=sleep)
    assert await limiter.acquire("a.example") == 0.0
    assert await limiter.acquire("b.example") == 0.0  # another host has its own bucket
    assert await limiter.acquire("a.example") == pytest.approx(0.5)
    assert waits == [pytest.approx(0.5)]


def test_invalid_buckets_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)
