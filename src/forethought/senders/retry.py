"""Retry policy (exponential backoff with full jitter) and a per-host token-bucket rate limiter.

Plain code, time and randomness injected, so tests need no sleeping:

>>> policy = RetryPolicy(max_attempts=4, base_seconds=1.0, max_seconds=5.0)
>>> [policy.ceiling(n) for n in (1, 2, 3, 4)]
[1.0, 2.0, 4.0, 5.0]
>>> 0.0 <= policy.delay(3, random.Random(1)) <= 4.0
True
>>> bucket = TokenBucket(rate=2.0, burst=1, now=0.0)
>>> bucket.reserve(0.0), bucket.reserve(0.0), bucket.reserve(0.0)
(0.0, 0.5, 1.0)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

AttemptKind = Literal["ok", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_attempts`` tries; before try n+1 wait ``uniform(0, min(max, base * 2**(n-1)))``."""

    max_attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def ceiling(self, failed_attempts: int) -> float:
        """The upper bound of the wait after ``failed_attempts`` failures (>= 1)."""
        return min(self.max_seconds, self.base_seconds * 2.0 ** (failed_attempts - 1))

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Full jitter (AWS architecture blog): uniform between 0 and the ceiling."""
        return (rng or random).uniform(0.0, self.ceiling(failed_attempts))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try gave: ``ok``, ``transient`` (worth retrying) or ``permanent``; ``detail`` says why."""

    kind: AttemptKind
    detail: str
    code: int | None = None
    retry_after: float | None = None  # seconds the server asked for (HTTP Retry-After)


@dataclass(frozen=True, slots=True)
class Retried:
    """The last attempt and how many tries it took."""

    last: Attempt
    attempts: int

    @property
    def retries(self) -> int:
        return self.attempts - 1


async def with_retries(
    attempt: Callable[[], Awaitable[Attempt]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> Retried:
    """Call ``attempt`` until it is ok or permanent, or ``policy.max_attempts`` is reached."""
    n = 0
    while True:
        n += 1
        result = await attempt()
        if result.kind != "transient" or n >= policy.max_attempts:
            return Retried(result, n)
        wait = policy.delay(n, rng)
        if result.retry_after is not None:
            wait = max(wait, min(result.retry_after, policy.max_seconds))
        await sleep(wait)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked. ``reserve`` returns how long to wait."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.updated = float(burst), now

    def reserve(self, now: float) -> float:
        """Take one token (possibly borrowed from the future); the wait until it is really ours."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class HostRateLimiter:
    """One :class:`TokenBucket` per host; ``await limiter.acquire(host)`` paces requests."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self.buckets: dict[str, TokenBucket] = {}

    def reserve(self, host: str) -> float:
        now = self.clock()
        bucket = self.buckets.get(host)
        if bucket is None:
            bucket = self.buckets[host] = TokenBucket(self.rate, self.burst, now)
        return bucket.reserve(now)

    async def acquire(self, host: str) -> float:
        """Wait for the host's next token; returns the seconds waited."""
        wait = self.reserve(host)
        if wait > 0:
            await self.sleep(wait)
        return wait
