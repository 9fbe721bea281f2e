"""Multivariate anomaly detection: River's Half-Space Trees, counted per event-time window.

Half-Space Trees (Tan, Ting & Liu, IJCAI 2011) split the unit cube at random; an observation is
anomalous when few observations of a *reference* window fell into the regions it falls into.
River's :class:`~river.anomaly.HalfSpaceTrees` counts that mass over windows of N observations,
so its scores depend on the order observations arrive in. Here the trees are River's (built by
``river.tree.padded.make_padded_tree`` from a seed, exactly as ``HalfSpaceTrees`` builds them,
and scored with its rule), but masses are counted per **event-time window** (one day by
default). The reference of an observation made at time ``t`` is the newest window that ended at
least ``guard`` seconds before ``t``. Masses are integer sums, so a model is a function of *which*
observations fell into which window, never of their order — provided every observation is made
before its window is used as a reference, i.e. none arrives more than ``guard`` late against the
others (a customer or input topic that lags by more breaks that). Then the worker, which sees a
partition in Kafka order, and replay, which sees it in event-time order, score alike.

The alert threshold adapts the same way. Each window keeps a histogram of the scores it gave,
and a score is anomalous at or above the ``1 - alert_rate`` quantile of the reference window's
scores, so alert volume stays near the configured rate whatever the traffic (as long as the reference
scored at least ``1 / alert_rate`` minutes; with fewer, the threshold is their maximum, and about
one minute in ``scored + 1`` alerts). (River's
``QuantileFilter`` keeps a running quantile whose value depends on order.) As with
``QuantileFilter(protect_anomaly_detector=True)``, anomalous observations are not learned: a
burst does not become the new normal.

>>> import random
>>> trees = WindowedTrees(("a", "b"), n_trees=5, height=4, window=100.0, guard=0.0, alert_rate=0.05,
...                       min_reference=50, seed=1)
>>> rng = random.Random(0)
>>> for i in range(200):   # two windows of ordinary observations near (0.25, 0.35)
...     _ = trees.observe({"a": 0.2 + rng.random() / 10, "b": 0.3 + rng.random() / 10}, at=i)
>>> trees.observe({"a": 0.25, "b": 0.35}, at=210.0).anomalous
False
>>> odd = trees.observe({"a": 0.9, "b": 0.33}, at=211.0)
>>> odd.anomalous, odd.unusual[0][0]   # anomalous, and feature "a" is what stands out
(True, 'a')
"""

from __future__ import annotations

import base64
import math
import random
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from river.tree.padded import PaddedBranch, make_padded_tree

from forethought.core.checkpoint import CheckpointError, index, integer, integers

BINS_PER_DECADE = 1000  # score histogram bins per decade of rarity -log10(1 - score) (top scores crowd near 1)
MAX_BIN = 9 * BINS_PER_DECADE  # rarity is capped at 1e-9 (Window.add_score)
QUANT = 1_000_000  # features are summed as integers in millionths, so sums do not depend on order
MIN_SPREAD = 0.02  # the smallest spread a feature's z-score divides by
PADDING = 0.15  # as River's HalfSpaceTrees


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one observation scored. ``score`` is None while the model is cold (no reference window
    with ``min_reference`` observations); ``unusual`` lists ``(feature, value, reference mean, z)``
    for the features furthest from the reference, largest ``|z|`` first."""

    score: float | None
    threshold: float | None
    anomalous: bool
    unusual: tuple[tuple[str, float, float, float], ...] = ()


@dataclass(slots=True)
class Window:
    """Everything one event-time window saw: node masses, counts, the score histogram and the
    per-feature sums (in millionths) of what it learned."""

    mass: array
    count: int = 0
    scores: dict[int, int] = field(default_factory=dict)
    sums: list[int] = field(default_factory=list)
    squares: list[int] = field(default_factory=list)
    scored: int = 0
    cached: tuple[int, float, float | None] = field(default=(-1, 0.0, None), compare=False)  # (scored, q, quantile)

    def add_score(self, score: float) -> None:
        """Count ``score`` in the histogram (bins of equal width in ``-log10(1 - score)``)."""
        bin_ = int(-math.log10(max(1.0 - score, 1e-9)) * BINS_PER_DECADE)
        self.scores[bin_] = self.scores.get(bin_, 0) + 1
        self.scored += 1

    def quantile(self, q: float) -> float | None:
        """The upper edge of the histogram bin holding quantile ``q`` of this window's scores."""
        if self.cached[:2] == (self.scored, q):
            return self.cached[2]
        found, need, seen = None, q * self.scored, 0
        for bin_, n in sorted(self.scores.items()):
            seen += n
            if seen >= need:
                found = round(1.0 - 10 ** (-(bin_ + 1) / BINS_PER_DECADE), 6)
                break
        self.cached = (self.scored, q, found)
        return found


class WindowedTrees:
    """Half-Space Trees over features in ``[0, 1]`` with masses per event-time window."""

    def __init__(self, features: Sequence[str], *, n_trees: int = 10, height: int = 8, window: float = 86_400.0,
                 guard: float = 300.0, alert_rate: float = 0.001, min_reference: int = 1000, seed: int = 7,
                 mass_floor: float = 0.1) -> None:
        self.features = tuple(features)
        self.n_trees, self.height, self.window, self.guard = n_trees, height, window, guard
        self.alert_rate, self.min_reference, self.seed, self.mass_floor = alert_rate, min_reference, seed, mass_floor
        self.nodes: int = 2 ** (height + 1) - 1
        self.split_feature, self.split_at = _build(self.features, n_trees, height, seed)
        self.windows: dict[int, Window] = {}

    def observe(self, x: Mapping[str, float], at: float) -> Verdict:
        """Score ``x`` (observed at event time ``at``) against its reference window, then learn it
        unless it was anomalous."""
        vec = tuple(min(1.0, max(0.0, float(x[name]))) for name in self.features)
        reference = self.reference(at)
        path = self._paths(vec)
        verdict = self._judge(vec, path, reference)
        home = self._window(math.floor(at / self.window))
        if verdict.score is not None:
            home.add_score(verdict.score)
        if not verdict.anomalous:
            self._learn(vec, path, home)
        return verdict

    def reference(self, at: float) -> Window | None:
        """The window an observation at ``at`` is scored against: the newest that ended at least
        ``guard`` before ``at`` (None when nothing was observed then)."""
        return self.windows.get(math.floor((at - self.guard) / self.window) - 1)

    def reference_size(self, at: float) -> int:
        """Observations in the reference window of time ``at`` (0 when there is none)."""
        reference = self.reference(at)
        return 0 if reference is None else reference.count

    def threshold(self, at: float) -> float | None:
        """The score at and above which an observation at ``at`` is anomalous (None while cold)."""
        reference = self.reference(at)
        return None if reference is None else self._threshold(reference)

    def _threshold(self, reference: Window) -> float | None:
        """The reference's ``1 - alert_rate`` score quantile, once it learned *and* scored ``min_reference``
        minutes (a quantile of a few scores is their maximum, and would alert far above the rate)."""
        if reference.count < self.min_reference or reference.scored < self.min_reference:
            return None
        return reference.quantile(1.0 - self.alert_rate)

    def _paths(self, vec: Sequence[float]) -> list[int]:
        """The mass index of every node on ``vec``'s root-to-leaf path in each tree, tree by tree."""
        feature, split, height = self.split_feature, self.split_at, self.height
        nodes, inner_nodes = self.nodes, self.nodes // 2
        path: list[int] = []
        for tree in range(self.n_trees):
            base, inner, node = tree * nodes, tree * inner_nodes, 0
            for _ in range(height):
                path.append(base + node)
                i = inner + node
                node = 2 * node + 1 if vec[feature[i]] < split[i] else 2 * node + 2
            path.append(base + node)
        return path

    def _score(self, path: list[int], reference: Window) -> float:
        """River's Half-Space Trees score of the path's vector against ``reference``: 0 ordinary ... 1 isolated."""
        size_limit, total, mass, step = self.mass_floor * reference.count, 0, reference.mass, self.height + 1
        for start in range(0, len(path), step):
            for depth in range(step):
                r = mass[path[start + depth]]
                total += r << depth
                if r < size_limit:
                    break
        return 1.0 - total / (self.n_trees * reference.count * self.nodes)

    def _judge(self, vec: tuple[float, ...], path: list[int], reference: Window | None) -> Verdict:
        if reference is None or reference.count < self.min_reference:
            return Verdict(None, None, False)
        score = round(self._score(path, reference), 6)
        threshold = self._threshold(reference)
        if threshold is None or score < threshold:
            return Verdict(score, threshold, False)
        return Verdict(score, threshold, True, self._unusual(vec, reference))

    def _unusual(self, vec: tuple[float, ...], reference: Window,
                 top: int = 3) -> tuple[tuple[str, float, float, float], ...]:
        found = []
        for i, name in enumerate(self.features):
            mean = reference.sums[i] / reference.count / QUANT
            var = max(0.0, reference.squares[i] / reference.count / QUANT**2 - mean * mean)
            z = (vec[i] - mean) / max(math.sqrt(var), MIN_SPREAD)
            found.append((name, vec[i], round(mean, 6), round(z, 3)))
        return tuple(sorted(found, key=lambda f: (-abs(f[3]), f[0]))[:top])

    def _learn(self, vec: tuple[float, ...], path: list[int], home: Window) -> None:
        mass = home.mass
        for node in path:
            mass[node] += 1
        home.count += 1
        for i, value in enumerate(vec):
            q = round(value * QUANT)
            home.sums[i] += q
            home.squares[i] += q * q

    def to_data(self) -> dict[str, object]:
        """The learned windows as plain data (masses as little-endian uint32, base64); the trees
        themselves are rebuilt from their seed. :meth:`load_data` reads it back.

        >>> trees = WindowedTrees(("a",), n_trees=1, height=1, window=10.0, seed=3)
        >>> _ = trees.observe({"a": 0.5}, at=1.0)
        >>> again = WindowedTrees(("a",), n_trees=1, height=1, window=10.0, seed=3)
        >>> again.load_data(trees.to_data())
        >>> again.windows == trees.windows
        True
        """
        return {str(index): {"mass": _mass_bytes(w.mass), "count": w.count, "scored": w.scored,
                             "scores": {str(b): n for b, n in w.scores.items()}, "sums": w.sums, "squares": w.squares}
                for index, w in self.windows.items()}

    def load_data(self, data: object) -> None:
        """Replace the learned windows by those of :meth:`to_data` (checked: :class:`CheckpointError`)."""
        if not isinstance(data, dict):
            raise CheckpointError("corrupt model checkpoint: behaviour windows are not a map")
        self.windows = {index(key, "behaviour window"): self._window_from(value) for key, value in data.items()}

    def _window_from(self, value: object) -> Window:
        if not isinstance(value, dict):
            raise CheckpointError("corrupt model checkpoint: a behaviour window is not a map")
        mass = _mass_array(value.get("mass"), self.n_trees * self.nodes)
        scores = value.get("scores")
        if not isinstance(scores, dict):
            raise CheckpointError("corrupt model checkpoint: behaviour scores are not a map")
        width, count = len(self.features), integer(value.get("count"), "behaviour count")
        bins = {index(b, "behaviour score bin"): integer(n, "behaviour score count") for b, n in scores.items()}
        if any(not 0 <= b <= MAX_BIN for b in bins):
            raise CheckpointError("corrupt model checkpoint: a behaviour score bin is out of range")
        sums = integers(value.get("sums"), "behaviour sums", width)
        squares = integers(value.get("squares"), "behaviour squares", width)
        if any(not 0 <= v <= count * QUANT for v in sums) or any(not 0 <= v <= count * QUANT**2 for v in squares):
            raise CheckpointError("corrupt model checkpoint: behaviour sums do not fit their count")
        return Window(mass, count=count, scores=bins, sums=sums, squares=squares,
                      scored=integer(value.get("scored"), "behaviour scored"))

    def _window(self, index: int) -> Window:
        home = self.windows.get(index)
        if home is None:
            home = self.windows[index] = Window(array("I", bytes(4 * self.n_trees * self.nodes)),
                                                sums=[0] * len(self.features), squares=[0] * len(self.features))
            for old in [w for w in self.windows if w < max(self.windows) - 3]:
                del self.windows[old]  # the reference is at most two back; one spare for a topic that lags
        return home


def _mass_bytes(mass: array) -> str:
    little = array(mass.typecode, mass)
    if sys.byteorder == "big":
        little.byteswap()
    return base64.b64encode(little.tobytes()).decode()


def _mass_array(value: object, length: int) -> array:
    try:
        raw = base64.b64decode(str(value), validate=True)
    except ValueError:
        raise CheckpointError("corrupt model checkpoint: behaviour masses are not base64") from None
    if len(raw) != 4 * length:
        raise CheckpointError(
            f"corrupt model checkpoint: behaviour masses hold {len(raw)} bytes, expected {4 * length}")
    mass = array("I", raw)
    if sys.byteorder == "big":
        mass.byteswap()
    return mass


def _build(features: tuple[str, ...], n_trees: int, height: int, seed: int) -> tuple[list[int], list[float]]:
    """River's random trees, flattened: internal node ``i`` of tree ``t`` is at ``t * (2**h - 1) + i``
    (heap order), its children are ``2i + 1`` and ``2i + 2``."""
    rng = random.Random(seed)
    split_feature: list[int] = []
    split_at: list[float] = []
    for _ in range(n_trees):
        root = make_padded_tree(limits={name: (0.0, 1.0) for name in sorted(features)}, height=height,
                                padding=PADDING, rng=rng, l_mass=0, r_mass=0)
        level: list[PaddedBranch] = [root]
        for _ in range(height):
            split_feature += [features.index(node.feature) for node in level]
            split_at += [float(node.threshold) for node in level]
            level = [child for node in level for child in node.children if isinstance(child, PaddedBranch)]
    return split_feature, split_at
