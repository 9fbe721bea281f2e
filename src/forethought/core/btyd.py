"""A buy-till-you-die model of activity, per customer in closed form, its population prior learned online.

The model is MBG/NBD (Batislam, Denizel & Filiztekin 2007, the "modified" BG/NBD of Fader, Hardie
& Lee 2005): while alive a customer is active in a period (a day by default) as a Poisson process
with rate λ ~ Gamma(r, α) across customers; at every active period, the first included, they
leave for good with probability p ~ Beta(a, b). A customer is summarised by three numbers: ``x``
repeat active periods, ``t_x`` the age at the last one and ``T`` the age now (ages in days since
the first activity). In closed form:

* P(alive | x, t_x, T) = 1 / (1 + a/(b + x) · ((α + T)/(α + t_x))^(r + x));
* given alive, λ's posterior is Gamma(r + x, α + T) and nobody leaves without being active, so
  P(no activity in the next h days) = 1 − P(alive) + P(alive) · ((α + T)/(α + T + h))^(r + x).

Unlike BG/NBD, a one-time customer (x = 0) can be gone too, so long-silent one-time customers do
not all tie at "alive". Everything here is stdlib (``math.lgamma``).

>>> prior = Params(r=0.5, alpha=5.0, a=0.5, b=3.0)
>>> round(p_alive(prior, x=0, tx=0.0, T=0.0), 4), round(p_silent(prior, 0, 0.0, 0.0, 14.0), 4)
(0.8571, 0.5826)
>>> round(p_alive(prior, x=4, tx=20.0, T=21.0), 3) > round(p_alive(prior, x=4, tx=20.0, T=120.0), 3)
True

The population prior (r, α, a, b) is learned from the stream by maximum likelihood over a
bounded table of customer summaries taken at ages that do not depend on the customer's activity
(so a long silence is seen as often as it happens: right-censoring at a fixed age, not at an
event): :class:`OnlineFit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from forethought.core.checkpoint import CheckpointError, floats

NAMES = ("r", "alpha", "a", "b")
MAX_REPEATS = 200  # summaries count at most this many repeat periods (the table stays small)
MEMORY = 100_000.0  # the table's weights halve when they sum to more (it keeps learning)
PULL = 0.5  # the fit's pull toward the configured prior: a log-normal with sd 1 on each log parameter


class Params(NamedTuple):
    """The population prior: λ ~ Gamma(r, α) (α in days), p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


def p_alive(p: Params, x: int, tx: float, T: float) -> float:
    """P(the customer is still alive at age ``T`` | ``x`` repeats, the last at age ``tx``)."""
    log_odds = math.log(p.a / (p.b + x)) + (p.r + x) * (math.log(p.alpha + T) - math.log(p.alpha + tx))
    return 0.0 if log_odds > 700 else 1.0 / (1.0 + math.exp(log_odds))


def p_silent(p: Params, x: int, tx: float, T: float, horizon: float) -> float:
    """P(no activity in the ``horizon`` days after age ``T``): the churn score."""
    alive = p_alive(p, x, tx, T)
    quiet = math.exp((p.r + x) * (math.log(p.alpha + T) - math.log(p.alpha + T + horizon)))
    return 1.0 - alive + alive * quiet


def expected_rate(p: Params, x: int, T: float) -> float:
    """Expected active periods per day while alive (the posterior mean of λ)."""
    return (p.r + x) / (p.alpha + T)


def age_at(p: Params, x: int, tx: float, T: float, horizon: float, threshold: float, limit: float) -> float | None:
    """The age (≥ ``T``) at which :func:`p_silent` reaches ``threshold`` if the customer stays silent
    (it only grows with silence), or None when not within ``limit`` days: a bracket by doubling the
    silence from one day, then regula falsi (Illinois) to five minutes: about a dozen evaluations.

    >>> prior = Params(r=0.5, alpha=5.0, a=0.5, b=3.0)
    >>> at = age_at(prior, 3, 30.0, 31.0, 14.0, 0.9, 3650.0)
    >>> round(p_silent(prior, 3, 30.0, at, 14.0), 3)
    0.9
    """
    k, alpha, log = p.r + x, p.alpha, math.log
    odds0 = log(p.a / (p.b + x)) - k * log(alpha + tx)
    exp, stay = math.exp, 1.0 - threshold

    def excess(age: float) -> float:  # p_silent(age) - threshold, with the constants hoisted
        here = log(alpha + age)
        alive = 1.0 / (1.0 + exp(min(700.0, odds0 + k * here)))
        return stay - alive + alive * exp(k * (here - log(alpha + age + horizon)))

    f_low = excess(T)
    if f_low >= 0:
        return T
    low, step = T, max(1.0, (alpha + T) / k)  # about the customer's expected gap
    while True:
        high = min(T + step, T + limit)
        f_high = excess(high)
        if f_high >= 0:
            break
        if high >= T + limit:
            return None
        low, f_low, step = high, f_high, step * 2
    side = 0
    while high - low > 5.0 / 1440:
        mid = (low * f_high - high * f_low) / (f_high - f_low)
        if not low < mid < high:
            mid = (low + high) / 2
        f_mid = excess(mid)
        if f_mid >= 0:
            high, f_high = mid, f_mid
            if side == -1:
                f_low /= 2
            side = -1
        else:
            low, f_low = mid, f_mid
            if side == 1:
                f_high /= 2
            side = 1
    return high


def loglik(p: Params, x: int, tx: float, T: float) -> float:
    """One summary's MBG/NBD log-likelihood."""
    r, alpha, a, b = p
    lg = math.lgamma
    common = (lg(r + x) - lg(r) + r * math.log(alpha) + lg(b + x + 1) + lg(a + b) - lg(b) - lg(a + b + x + 1)
              - (r + x) * math.log(alpha + T))
    log_odds = math.log(a / (b + x)) + (r + x) * (math.log(alpha + T) - math.log(alpha + tx))
    return common + (log_odds + math.log1p(math.exp(-log_odds)) if log_odds > 0 else math.log1p(math.exp(log_odds)))


def total_loglik(p: Params, table: dict[tuple[int, int, int], float]) -> float:
    """Σ weight · log-likelihood over a table of summaries ``(x, t_x, T) -> weight`` (whole days)."""
    return sum(w * loglik(p, x, tx, T) for (x, tx, T), w in table.items())


def maximise(start: Params, table: dict[tuple[int, int, int], float], evaluations: int = 400,
             centre: Params | None = None) -> Params:
    """The most likely parameters (Nelder–Mead on their logarithms, from ``start``; stdlib only), with a
    weak log-normal pull toward ``centre`` (the configured prior; worth about one customer per parameter):
    with many customers it is maximum likelihood, with few or degenerate data (no heterogeneity, where
    the likelihood runs off to infinite r and α) the parameters stay finite."""
    anchor = [math.log(v) for v in (centre or start)]

    def cost(v: list[float]) -> float:
        if max(v) > 12 or min(v) < -12:
            return math.inf
        pull = PULL * sum((a - b) ** 2 for a, b in zip(v, anchor))
        try:
            return pull - total_loglik(Params(*map(math.exp, v)), table)
        except (ValueError, OverflowError, ZeroDivisionError):
            return math.inf

    best = _nelder_mead(cost, [math.log(v) for v in start], evaluations)
    return Params(*(round(math.exp(v), 6) for v in best))


def _nelder_mead(f: object, x0: list[float], budget: int) -> list[float]:
    func = f if callable(f) else None
    assert func is not None
    n = len(x0)
    simplex = [x0] + [[v + (0.5 if i == j else 0.0) for j, v in enumerate(x0)] for i in range(n)]
    values = [func(s) for s in simplex]
    used = n + 1
    while used < budget:
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if abs(values[-1] - values[0]) < 1e-7 * (1 + abs(values[0])):
            break
        centre = [sum(s[j] for s in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]
        reflect = [c + (c - w) for c, w in zip(centre, worst)]
        fr = func(reflect)
        used += 1
        if fr < values[0]:
            expand = [c + 2 * (c - w) for c, w in zip(centre, worst)]
            fe = func(expand)
            used += 1
            simplex[-1], values[-1] = (expand, fe) if fe < fr else (reflect, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflect, fr
        else:
            inside = [c + 0.5 * (w - c) for c, w in zip(centre, worst)]
            fc = func(inside)
            used += 1
            if fc < values[-1]:
                simplex[-1], values[-1] = inside, fc
            else:  # shrink toward the best
                simplex = [simplex[0]] + [[b + 0.5 * (s - b) for s, b in zip(point, simplex[0])]
                                          for point in simplex[1:]]
                values = [values[0]] + [func(s) for s in simplex[1:]]
                used += n
    return simplex[min(range(n + 1), key=values.__getitem__)]


def _grid(days: float) -> int:
    """Whole days below four weeks, whole weeks above: the summary table stays a few hundred rows.

    >>> [_grid(d) for d in (0.4, 13.6, 30.0, 150.2)]
    [0, 14, 28, 147]
    """
    return int(round(days)) if days < 28 else 7 * int(round(days / 7))


@dataclass(slots=True)
class OnlineFit:
    """The partition's churn prior, learned online: a table of customer summaries ``(x, t_x, T)`` in
    whole days with weights, and the parameters of the last maximum-likelihood fit over it.

    A fit runs when the table's weight reaches ``min_samples`` and then each time it has doubled
    since the last fit (so about a dozen fits over any stream), warm-started from the last
    parameters; until the first fit :meth:`params` is None (the configured prior is used).

    >>> fit = OnlineFit(min_samples=30)
    >>> for i in range(40):
    ...     refit = fit.learn(x=i % 4, tx=float(10 * (i % 4)), T=60.0)
    >>> fit.params() is not None, fit.samples
    (True, 40.0)
    >>> again = OnlineFit(min_samples=30)
    >>> again.load_data(fit.to_data())
    >>> again.params() == fit.params() and again.table == fit.table
    True
    """

    min_samples: int = 200
    table: dict[tuple[int, int, int], float] = field(default_factory=dict)
    fitted: Params | None = None
    fitted_at: float = 0.0  # the table's weight at the last fit
    start: Params = Params(0.5, 5.0, 0.5, 3.0)

    @property
    def samples(self) -> float:
        """The table's total weight (summaries learned, halved now and then)."""
        return sum(self.table.values())

    def learn(self, x: int, tx: float, T: float) -> bool:
        """One customer's summary at a fixed age ``T`` (days); True when it triggered a new fit."""
        whole = _grid(T)
        key = (min(int(x), MAX_REPEATS), min(_grid(tx), whole), whole)
        self.table[key] = self.table.get(key, 0.0) + 1.0
        total = self.samples
        if total > MEMORY:
            self.table = {k: w / 2 for k, w in self.table.items()}
            self.fitted_at /= 2
            total /= 2
        if total >= self.min_samples and total >= 2 * self.fitted_at:
            budget = 400 if self.fitted is None else 150  # a warm start needs fewer steps
            self.fitted = maximise(self.fitted or self.start, self.table, budget, centre=self.start)
            self.fitted_at = total
            return True
        return False

    def params(self) -> Params | None:
        """The learned prior, or None before the first fit."""
        return self.fitted

    def to_data(self) -> dict[str, object]:
        """Plain data for the partition's checkpoint; :meth:`load_data` reads it back."""
        return {"table": [[x, tx, T, w] for (x, tx, T), w in self.table.items()],
                "fitted": None if self.fitted is None else dict(self.fitted._asdict()), "fitted_at": self.fitted_at}

    def load_data(self, data: object) -> None:
        """Replace the table and fit by :meth:`to_data`'s (checked: :class:`CheckpointError`)."""
        if not isinstance(data, dict) or not isinstance(data.get("table"), list):
            raise CheckpointError("corrupt model checkpoint: the churn prior is not a map with a table")
        table: dict[tuple[int, int, int], float] = {}
        for row in data["table"]:
            if (not isinstance(row, list) or len(row) != 4 or not all(type(v) is int for v in row[:3])
                    or not isinstance(row[3], (int, float)) or not 0 <= row[1] <= row[2] or row[0] < 0
                    or not 0 < row[3] <= MEMORY * 2):
                raise CheckpointError("corrupt model checkpoint: a churn summary is malformed")
            table[(row[0], row[1], row[2])] = float(row[3])
        fitted = data.get("fitted")
        params = None
        if fitted is not None:
            values = floats(fitted, "churn prior")
            if set(values) != set(NAMES) or not all(0 < v < 1e6 for v in values.values()):
                raise CheckpointError("corrupt model checkpoint: the churn prior's parameters are malformed")
            params = Params(*(values[k] for k in NAMES))
        at = floats({"fitted_at": data.get("fitted_at", 0.0)}, "churn fit weight")["fitted_at"]
        self.table, self.fitted, self.fitted_at = table, params, max(0.0, at)
