"""Playbook variants chosen by a Beta-Bernoulli bandit, one per playbook per partition.

A playbook may list variants (a template, a channel, or both; docs/playbooks.md). For each trigger
that passed the policy and the holdout, the playbook's :class:`VariantBandit` picks one; each pull
is settled later by the customer's outcomes: a success (an outcome status the playbook counts as
one, or the customer active again when ``came_back`` counts) or a failure (an unsubscribe, or no
success by the end of the reward window). Each arm keeps ``[pulls, successes, failures]``.

A success is learned as it arrives; a pull still waiting counts as a failure until then, so a
variant's posterior is Beta(1 + successes, 1 + pulls - successes). Counting only settled pulls
instead would credit successes (which come early) before failures (which come only when a window
ends): the variant with the most pulls waiting would look best, and be pulled more. Waiting pulls
counted as failures err the other way, mildly (most successes come soon after the send) and
self-correcting (a variant pulled much looks a little worse, and is explored less).

**Thompson sampling** chooses each variant with the probability that it is the best one under
those posteriors. The probabilities are computed, not sampled: on a grid around the posteriors
(:func:`thompson_probabilities`), again once pulls and successes have grown by an eighth since
the last time (at least 8, at most 500 of them: the allocation moves in steps, as Braze's
re-allocation twice a day does), so a choice costs one hash. **UCB** (UCB1) chooses the variant
of highest ``mean + sqrt(2 ln N / n)`` over pulls (variants not pulled yet first).

Determinism: the only randomness is a uniform number hashed from the trigger id and the bandit's
counts; there is no random generator whose state a replay would have to match. River's
bandit policies (``river.bandit.ThompsonSampling``) were not used for that reason: they draw from a
``random.Random`` advanced by every pull (so a choice depends on how many came before, and a
checkpoint would carry generator states), update at once with no pending pulls, and do not say
with which probability they chose (docs/playbooks.md, "Variants and the bandit").

>>> bandit = VariantBandit(("short", "long"))
>>> bandit.choose("trigger-1")
('long', {'short': 0.5, 'long': 0.5})
>>> for _ in range(30):
...     bandit.pulled("long"); bandit.settle("long", True); bandit.pulled("short"); bandit.settle("short", False)
>>> bandit.choose("trigger-1")
('long', {'short': 0.0, 'long': 1.0})
>>> VariantBandit.from_data(bandit.to_data()).choose("trigger-1") == bandit.choose("trigger-1")
True
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from forethought.contracts.records import Choice
from forethought.core.checkpoint import CheckpointError, integers

POLICIES = ("thompson", "ucb")
GRID = 32  # cells of the grid Thompson's probabilities are computed on
SPREAD = 6.0  # the grid spans every posterior's mean +- this many standard deviations
REFRESH = (8, 8, 500)  # Thompson's probabilities are recomputed once pulls and successes grew by an eighth,
                       # at least 8 and at most 500 of them
MAX_BANDITS = 1024  # playbooks a checkpoint may hold bandits for
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Variant:
    """One variant of a compiled playbook."""

    name: str
    template: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class BanditSettings:
    """How a playbook's variants are chosen and rewarded (from its ``bandit:`` block)."""

    policy: str = "thompson"
    rewards: frozenset[str] = frozenset({"clicked", "converted"})
    window: float = 86_400.0


class VariantBandit:
    """One playbook's bandit (see the module docstring); ``arms[name] = [pulls, successes, failures]``."""

    def __init__(self, names: tuple[str, ...], policy: str = "thompson") -> None:
        self.names, self.policy = names, policy
        self.arms: dict[str, list[int]] = {name: [0, 0, 0] for name in names}
        self.basis: dict[str, tuple[int, int]] | None = None  # the (successes, others) the probabilities are of
        self._basis_seen = 0  # ``seen`` when the probabilities were computed
        self._probabilities: dict[str, float] = {}
        self._choices: dict[tuple[str, tuple[float, ...]], Choice] = {}  # built once per allocation
        self.seen = 0  # pulls and successes so far, of every arm: what moves the posteriors

    def choose(self, key: str) -> tuple[str, dict[str, float]]:
        """The variant for the trigger ``key`` and the probability each variant had."""
        u = uniform(key, self.seen)
        probabilities = self._ucb() if self.policy == "ucb" else self._thompson()
        total = 0.0
        for name in self.names:
            total += probabilities[name]
            if u < total:
                return name, probabilities
        return max(self.names, key=probabilities.__getitem__), probabilities  # rounding left u above the sum

    def choice(self, key: str) -> Choice:
        """:meth:`choose` as the trigger's ``why.choice`` (one object per variant and allocation).

        >>> VariantBandit(("a", "b"), "ucb").choice("t1")
        Choice(policy='ucb', variant='a', probabilities={'a': 0.5, 'b': 0.5})
        """
        name, probabilities = self.choose(key)
        cache = (name, tuple(probabilities.values()))
        made = self._choices.get(cache)
        if made is None:
            if len(self._choices) > 4 * len(self.names):
                self._choices.clear()
            made = self._choices[cache] = Choice(policy=self.policy, variant=name, probabilities=probabilities)
        return made

    def pulled(self, name: str) -> None:
        """A trigger with variant ``name`` was sent (it is settled later)."""
        if name in self.arms:
            self.arms[name][0] += 1
            self.seen += 1

    def settle(self, name: str, success: bool) -> None:
        """A pull of ``name`` ended in a success or a failure (a failure changes no posterior: a pull
        waiting counted as one already)."""
        arm = self.arms.get(name)
        if arm is not None:
            arm[1 if success else 2] += 1
            self.seen += success

    def reshaped(self, names: tuple[str, ...], policy: str) -> VariantBandit:
        """This bandit for a reloaded playbook: variants kept by name keep what they learned."""
        if names == self.names and policy == self.policy:
            return self
        again = VariantBandit(names, policy)
        again.arms.update({n: list(a) for n, a in self.arms.items() if n in again.arms})
        again.seen = sum(a[0] + a[1] for a in again.arms.values())
        return again

    def _thompson(self) -> dict[str, float]:
        seen, basis = self.seen, self.basis
        least, part, most = REFRESH
        if basis is None or seen - self._basis_seen >= min(max(least, seen // part), most):
            basis = self.basis = {n: (a[1], max(0, a[0] - a[1])) for n, a in self.arms.items()}
            self._probabilities = {}
        if not self._probabilities:
            self._basis_seen = sum(2 * s + f for s, f in basis.values())
            values = thompson_probabilities([basis[n] for n in self.names])
            self._probabilities = dict(zip(self.names, values, strict=True))
        return self._probabilities

    def _ucb(self) -> dict[str, float]:
        counts = {n: a[0] for n, a in self.arms.items()}
        fresh = [n for n in self.names if counts[n] == 0]
        if fresh:
            best = fresh
        else:
            log_n = 2.0 * math.log(sum(counts.values()))
            index = {n: self.arms[n][1] / counts[n] + math.sqrt(log_n / counts[n]) for n in self.names}
            top = max(index.values())
            best = [n for n in self.names if index[n] == top]
        return {n: 1.0 / len(best) if n in best else 0.0 for n in self.names}

    def to_data(self) -> dict[str, Any]:
        """Plain data for the partition's checkpoint (:meth:`from_data` reads it back, checked)."""
        data: dict[str, Any] = {"policy": self.policy, "arms": {n: list(self.arms[n]) for n in self.names}}
        if self.basis is not None:
            data["basis"] = {n: list(self.basis[n]) for n in self.names}
        return data

    @classmethod
    def from_data(cls, data: Any) -> VariantBandit:
        """A bandit from :meth:`to_data`; :class:`CheckpointError` names what is wrong."""
        if not isinstance(data, dict) or data.get("policy") not in POLICIES or not isinstance(data.get("arms"), dict):
            raise CheckpointError("corrupt model checkpoint: a bandit is not a map with a policy and arms")
        arms = data["arms"]
        if not 2 <= len(arms) <= 8 or not all(isinstance(n, str) and NAME.fullmatch(n) for n in arms):
            raise CheckpointError("corrupt model checkpoint: a bandit's variants are not 2 to 8 names")
        bandit = cls(tuple(arms), data["policy"])
        for name, counts in arms.items():
            bandit.arms[name] = _counts(counts, 3)
        bandit.seen = sum(a[0] + a[1] for a in bandit.arms.values())
        basis = data.get("basis")
        if basis is not None:
            if not isinstance(basis, dict) or set(basis) != set(arms):
                raise CheckpointError("corrupt model checkpoint: a bandit's basis does not match its variants")
            bandit.basis = {n: (c[0], c[1]) for n, c in ((n, _counts(basis[n], 2)) for n in bandit.names)}
            bandit._basis_seen = sum(2 * s + f for s, f in bandit.basis.values())  # noqa: SLF001 - its own class
        return bandit


class Bandits:
    """The bandits of one partition, by playbook name (kept with :class:`~forethought.core.models.PartitionModels`)."""

    def __init__(self) -> None:
        self.by_playbook: dict[str, VariantBandit] = {}
        self.changes = 0  # pulls and settles since the last checkpoint (PartitionModels.unsaved)

    def of(self, playbook: str, names: tuple[str, ...], policy: str) -> VariantBandit:
        """The playbook's bandit over ``names`` (made, or reshaped after a reload, on first use)."""
        bandit = self.by_playbook.get(playbook)
        if bandit is None or bandit.names != names or bandit.policy != policy:
            bandit = VariantBandit(names, policy) if bandit is None else bandit.reshaped(names, policy)
            self.by_playbook[playbook] = bandit
        self.changes += 1  # every use is a pull or a settle, except a choice (which learns nothing, but is rare)
        return bandit

    def to_data(self) -> dict[str, Any]:
        return {name: bandit.to_data() for name, bandit in self.by_playbook.items()}

    def load_data(self, data: Any) -> None:
        """Replace the bandits by those of :meth:`to_data` (checked: :class:`CheckpointError`)."""
        if not isinstance(data, dict) or len(data) > MAX_BANDITS or not all(
                isinstance(n, str) and NAME.fullmatch(n) for n in data):
            raise CheckpointError("corrupt model checkpoint: the bandits are not a map of playbook names")
        self.by_playbook = {name: VariantBandit.from_data(bandit) for name, bandit in data.items()}


def thompson_probabilities(posteriors: list[tuple[int, int]], cells: int = GRID) -> list[float]:
    """For Beta(1 + s, 1 + f) posteriors ``(s, f)``: the probability that each is the largest,
    integrated on ``cells`` cells spanning every posterior's mean +- :data:`SPREAD` standard deviations.

    >>> thompson_probabilities([(0, 0), (0, 0)])
    [0.5, 0.5]
    >>> [round(p, 2) for p in thompson_probabilities([(10, 90), (20, 80), (0, 0)])]
    [0.0, 0.2, 0.79]
    """
    params = [(s + 1.0, f + 1.0) for s, f in posteriors]
    stats = [(a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))) for a, b in params]
    lo = max(0.0, min(m - SPREAD * sd for m, sd in stats))
    hi = min(1.0, max(m + SPREAD * sd for m, sd in stats))
    width = (hi - lo) / cells
    xs = [lo + (i + 0.5) * width for i in range(cells)]
    logs = [(math.log(x), math.log1p(-x)) for x in xs]
    masses, below = [], []
    for a, b in params:
        am, bm = a - 1.0, b - 1.0
        weights = [am * lx + bm * l1x for lx, l1x in logs]
        top = max(weights)
        mass = [math.exp(w - top) for w in weights]
        scale = 1.0 / sum(mass)
        mass = [m * scale for m in mass]
        masses.append(mass)  # below: P(this arm's value is below the cell's middle); ties in a cell split evenly
        below.append([c - 0.5 * m for c, m in zip(accumulate(mass), mass, strict=True)])
    everyone = [math.prod(column) for column in zip(*below, strict=True)]
    wins = [sum(m * e / c for m, e, c in zip(mass, everyone, cdf, strict=True) if m > 1e-12)
            for mass, cdf in zip(masses, below, strict=True)]
    total = sum(wins)
    return [round(w / total, 4) for w in wins]


def uniform(key: str, salt: int) -> float:
    """A number in [0, 1) from a hash of ``key`` and ``salt``: the only randomness of a choice."""
    digest = hashlib.blake2b(f"{key}\x1f{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def _counts(value: Any, length: int) -> list[int]:
    counts = integers(value, "bandit counts", length)
    if min(counts) < 0:
        raise CheckpointError("corrupt model checkpoint: bandit counts are negative")
    return list(counts)
