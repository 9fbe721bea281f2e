"""The population prior of a partition: how long its customers usually stay away, learned.

A customer with few visits is judged against the population (:func:`~forethought.core.detectors.gap_model`
shrinks their own log-gap statistics toward a prior). Once a day, at each customer's daily check,
a customer with at least ``min_gaps`` gaps between visits adds their own mean and variance of
log gaps to the partition's population window for that day. The prior is then the mixture those
customers make: mean of their means, and a spread that is the variance *between* customers plus
the average variance *within* one — what a newcomer's gap may be, knowing only the population.

Like the behaviour trees, windows are event-time days and sums are integers (millionths), so
the prior is a function of which customers were seen, not of order. The prior used at time ``t``
comes from the window that ended at least one whole window before ``t``: daily checks the worker's
timer has not reached yet can never change a prior already in use. The learned spread is never
narrower than the configured ``prior_log_sd``.

It is off by default (``prior_learned``): measured on the simulator, whose customers all start
with the deployment, the customers who first reach ``min_gaps`` gaps are the frequent ones, so
the prior starts near 2 hours and takes a month to reach the population's ~20 hours; drop-off
precision fell from 0.50 to 0.41 on the development seed. An estimate that accounts for the
customers still waiting for their gaps (right-censoring) is what would fix that.

>>> prior = PopulationPrior(window=100.0, min_customers=3)
>>> for i, mean in enumerate([8.0, 9.0, 10.0]):
...     prior.learn(mean, 0.25, at=10.0 + i)
>>> prior.prior(150.0) is None, prior.prior(250.0)   # window 0 is used from window 2 on
(True, (9.0, 0.957427))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from forethought.core.checkpoint import CheckpointError, index, integers

QUANT = 1_000_000
KEEP = 8  # windows kept behind the newest: a daily check run late (the worker's timer lags a busy batch)
          # must still find the window its prior comes from


@dataclass(slots=True)
class PopulationPrior:
    """Per-window sums of customers' log-gap means and variances (``[n, Σm, Σm², Σv]`` in millionths)."""

    window: float = 86_400.0
    min_customers: int = 50
    windows: dict[int, list[int]] = field(default_factory=dict)

    def learn(self, mean: float, var: float, at: float) -> None:
        """One customer's own log-gap mean and variance, seen at their daily check at ``at``."""
        index = math.floor(at / self.window)
        sums = self.windows.setdefault(index, [0, 0, 0, 0])
        m, v = round(mean * QUANT), round(max(var, 0.0) * QUANT)
        sums[0] += 1
        sums[1] += m
        sums[2] += m * m
        sums[3] += v
        for old in [w for w in self.windows if w < index - KEEP]:
            del self.windows[old]

    def prior(self, at: float) -> tuple[float, float] | None:
        """``(mean, sd)`` of log gaps for time ``at``, or None while fewer than ``min_customers`` were seen."""
        sums = self.windows.get(math.floor(at / self.window) - 2)
        if sums is None or sums[0] < self.min_customers:
            return None
        n, total, squares, within = sums
        mean = total / n / QUANT
        between = max(0.0, squares / n / QUANT**2 - mean * mean)
        return round(mean, 6), round(math.sqrt(between + within / n / QUANT), 6)

    def to_data(self) -> dict[str, list[int]]:
        """The learned windows as plain data; :meth:`load_data` reads it back.

        >>> prior = PopulationPrior(window=100.0)
        >>> prior.learn(8.0, 0.25, at=10.0)
        >>> prior.to_data()
        {'0': [1, 8000000, 64000000000000, 250000]}
        >>> again = PopulationPrior(window=100.0)
        >>> again.load_data(prior.to_data())
        >>> again == prior
        True
        """
        return {str(index): sums for index, sums in self.windows.items()}

    def load_data(self, data: object) -> None:
        """Replace the learned windows by those of :meth:`to_data` (checked: :class:`CheckpointError`)."""
        if not isinstance(data, dict):
            raise CheckpointError("corrupt model checkpoint: population windows are not a map")
        windows = {}
        for key, sums in data.items():
            numbers = integers(sums, "population sums", 4)
            if numbers[0] < 0 or numbers[3] < 0:
                raise CheckpointError("corrupt model checkpoint: population counts are negative")
            windows[index(key, "population window")] = numbers
        self.windows = windows
