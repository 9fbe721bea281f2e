"""Exponentially weighted baselines that serialise as three numbers.

River's ``stats.EWMean``/``EWVar`` compute the same recurrences; this copy exists because the
customer state is stored as compact JSON in a changelog, and three floats restore exactly.

>>> stats = EwStats()
>>> for x in [1.0, 1.0, 1.0, 1.0]:
...     stats = stats.update(x, alpha=0.5)
>>> stats.n, stats.mean, round(stats.var, 6)
(4, 1.0, 0.0)
>>> stats.update(3.0, alpha=0.5).mean
2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EwStats:
    """Count, EW mean and EW variance of a stream of observations."""

    n: int = 0
    mean: float = 0.0
    var: float = 0.0

    def update(self, x: float, alpha: float) -> EwStats:
        """Fold in one observation; the first one sets the mean.

        Uses a faster rate while ``n`` is small (``max(alpha, 1/(n+1))``), so early
        observations count as in a plain average.
        """
        if self.n == 0:
            return EwStats(1, x, 0.0)
        rate = max(alpha, 1.0 / (self.n + 1))
        delta = x - self.mean
        mean = self.mean + rate * delta
        var = (1 - rate) * (self.var + rate * delta * delta)
        return EwStats(self.n + 1, mean, var)

    def update_rounded(self, x: float, alpha: float) -> EwStats:
        """:meth:`update` then :meth:`rounded`, as one new object (what every stored baseline does).

        >>> EwStats(3, 0.25, 0.02).update_rounded(0.3, 0.2) == EwStats(3, 0.25, 0.02).update(0.3, 0.2).rounded()
        True
        """
        if self.n == 0:
            return EwStats(1, float(f"{x:.7g}"), 0.0)
        rate = max(alpha, 1.0 / (self.n + 1))
        delta = x - self.mean
        mean = self.mean + rate * delta
        var = (1 - rate) * (self.var + rate * delta * delta)
        return EwStats(self.n + 1, float(f"{mean:.7g}"), float(f"{var:.7g}"))

    def update_repeated(self, x: float, times: int, alpha: float) -> EwStats:
        """Fold in ``x`` ``times`` times, in O(1) once the rate has settled at ``alpha``.

        >>> slow = EwStats(50, 2.0, 1.0)
        >>> for _ in range(500):
        ...     slow = slow.update(0.0, 0.05)
        >>> fast = EwStats(50, 2.0, 1.0).update_repeated(0.0, 500, 0.05)
        >>> abs(fast.mean - slow.mean) < 1e-9 and abs(fast.var - slow.var) < 1e-9
        True
        """
        stats = self
        while times > 0 and max(alpha, 1.0 / (stats.n + 1)) > alpha:
            stats, times = stats.update(x, alpha), times - 1
        if times <= 0:
            return stats
        # with a constant rate a, the mean's distance d to x shrinks by (1-a) per step, and
        # var' = (1-a)(var + a d^2): a geometric sum with a closed form
        keep, d = (1.0 - alpha) ** times, stats.mean - x
        if alpha == 1.0:
            return EwStats(stats.n + times, x, 0.0)
        ratio = (1.0 - alpha) ** 2
        added = alpha * d * d * (1.0 - alpha) * (keep * keep - keep) / (ratio - (1.0 - alpha))
        var = keep * stats.var + added
        return EwStats(stats.n + times, x + d * keep, max(var, 0.0))

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def shrunk(self, prior_mean: float, prior_sd: float, prior_weight: float) -> tuple[float, float]:
        """Mean and sd pulled toward a population prior while few observations exist.

        >>> EwStats().shrunk(5.0, 1.0, 3.0)
        (5.0, 1.0)
        """
        w = self.n / (self.n + prior_weight)
        mean = w * self.mean + (1 - w) * prior_mean
        var = w * self.var + (1 - w) * prior_sd * prior_sd
        return mean, math.sqrt(max(var, 1e-12))

    def rounded(self) -> EwStats:
        """Mean and variance to 7 significant digits: what the state stores (a restored state then
        equals the live one, and the changelog value stays short).

        >>> EwStats(3, 0.26180195402512274, 0.0199020179).rounded()
        EwStats(n=3, mean=0.261802, var=0.01990202)
        """
        return EwStats(self.n, float(f"{self.mean:.7g}"), float(f"{self.var:.7g}"))

    def to_list(self) -> list[float]:
        return [self.n, self.mean, self.var]

    @classmethod
    def from_list(cls, data: list[float]) -> EwStats:
        return cls(int(data[0]), float(data[1]), float(data[2])) if data else cls()


def normal_cdf(z: float) -> float:
    """P(Z <= z) for a standard normal.

    >>> round(normal_cdf(2.33), 3)
    0.99
    """
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
