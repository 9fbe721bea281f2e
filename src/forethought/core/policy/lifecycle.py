"""When a lifecycle playbook (one that listens to ``daily``) can possibly hold, read from its condition.

A playbook such as ``onboarding_stalled`` starts its condition with bounds on the profile's
lifecycle dates (``profile.days_since_signup >= 3 and profile.days_since_signup < 30 and ...``).
Outside those bounds the condition is false whatever the customer does, so the engine need not
look at the customer then. :func:`bounds` reads the bounds from the *leading* conjuncts of the
condition that compare ``profile.days_since_signup`` or ``profile.days_until_renewal`` with numbers
(such a comparison can never raise: a missing date compares false); a condition that does not
start that way is open at all times (looked at every day, as before).

>>> b = bounds("profile.days_since_signup >= 3 and profile.days_since_signup < 30 and not features.used.x")
>>> b
Bounds(signup=(3.0, 30.0), renewal=(-inf, inf))
>>> bounds("features.events_last_7_days < 2 and profile.days_since_signup >= 3") is None  # not leading
True
>>> bounds("0 <= profile.days_until_renewal <= 30")
Bounds(signup=(-inf, inf), renewal=(0.0, 30.0))
>>> from datetime import date
>>> start, end = b.span(date(2026, 1, 1), None)
>>> (start - 1_767_225_600) / 86_400, (end - 1_767_225_600) / 86_400  # from signup midnight, 60 s margins
(2.9993055555555554, 30.000694444444445)
>>> b.span(None, None)  # no signup date: the condition is never true
(inf, -inf)
"""

from __future__ import annotations

import ast
import math
from datetime import UTC, date, datetime
from typing import NamedTuple

DAY = 86_400.0
MARGIN = 60.0  # seconds: the profile's day counts are rounded to 4 decimals (8.64 s)
_NAMES = {"profile.days_since_signup": "signup", "profile.days_until_renewal": "renewal"}
_ALL = (-math.inf, math.inf)


class Bounds(NamedTuple):
    """Closed ranges of days since signup and days until renewal outside which a condition is false."""

    signup: tuple[float, float] = _ALL
    renewal: tuple[float, float] = _ALL

    def span(self, signup: date | None, renewal: date | None) -> tuple[float, float]:
        """The event-time interval ``(start, end)`` the bounds allow for these profile dates
        (``start > end``: never), widened by :data:`MARGIN` at both ends."""
        start, end = -math.inf, math.inf
        if self.signup != _ALL:
            if signup is None:
                return math.inf, -math.inf
            midnight = _midnight(signup)
            start, end = max(start, midnight + self.signup[0] * DAY), min(end, midnight + self.signup[1] * DAY)
        if self.renewal != _ALL:
            if renewal is None:
                return math.inf, -math.inf
            midnight = _midnight(renewal)
            start, end = max(start, midnight - self.renewal[1] * DAY), min(end, midnight - self.renewal[0] * DAY)
        return start - MARGIN, end + MARGIN


def bounds(source: str) -> Bounds | None:
    """The lifecycle bounds that ``source``'s leading conjuncts put on it; None when there are none."""
    try:
        body = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    parts = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    found: dict[str, tuple[float, float]] = {}
    for part in parts:
        pairs = _pairs(part)
        if pairs is None:
            break  # only a leading run of pure lifecycle comparisons is sure to be evaluated first
        for name, low, high in pairs:
            old = found.get(name, _ALL)
            found[name] = (max(old[0], low), min(old[1], high))
    return Bounds(**found) if found else None


def _pairs(node: ast.expr) -> list[tuple[str, float, float]] | None:
    """The ranges a comparison of lifecycle names and numbers puts on each name (None: not one)."""
    if not isinstance(node, ast.Compare):
        return None
    items = [node.left, *node.comparators]
    values = [_number(item) for item in items]
    names = [_NAMES.get(_dotted(item) or "") for item in items]
    if any(v is None and n is None for v, n in zip(values, names, strict=True)):
        return None
    found: list[tuple[str, float, float]] = []
    for i, op in enumerate(node.ops):
        if not isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE | ast.Eq):
            return None
        left, right = (names[i], values[i]), (names[i + 1], values[i + 1])
        if left[0] is not None and right[1] is not None:
            found.append(_range(left[0], op, right[1]))
        elif right[0] is not None and left[1] is not None:
            found.append(_range(right[0], _MIRROR.get(type(op), op), left[1]))
    return found


_MIRROR: dict[type, ast.cmpop] = {ast.Lt: ast.Gt(), ast.LtE: ast.GtE(), ast.Gt: ast.Lt(), ast.GtE: ast.LtE()}


def _range(name: str, op: ast.cmpop, value: float) -> tuple[str, float, float]:
    """``name op value`` as a closed range (strict bounds kept closed: a look too many is harmless)."""
    if isinstance(op, ast.Lt | ast.LtE):
        return name, -math.inf, value
    if isinstance(op, ast.Gt | ast.GtE):
        return name, value, math.inf
    return name, value, value


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (head := _dotted(node.value)) is not None:
        return f"{head}.{node.attr}"
    return None


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
